//! Who may use `/admin/`: HTTP basic credentials checked in constant
//! time against a password or a PBKDF2 hash, then a session cookie (so the
//! slow hash runs once per login, not per request) to which every
//! mutating request's CSRF token is bound.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// PBKDF2-HMAC-SHA256 rounds for new hashes (OWASP's 2023 figure).
pub const ITERATIONS: u32 = 600_000;
/// How long a session lasts after its login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 4_096;
/// The session cookie's name.
pub const COOKIE: &str = "maglev_session";

/// A bad password hash.
#[derive(Debug, thiserror::Error)]
#[error("MAGLEV_FRONTEND_PASSWORD_HASH: {0} (make one with `maglevd-frontend --hash-password`)")]
pub struct HashError(&'static str);

enum Secret {
    Plain(Vec<u8>),
    Pbkdf2 {
        iterations: NonZeroU32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

/// The admin's credentials.
pub struct Credentials {
    user: String,
    secret: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .expect("the system's random source works");
    b
}

/// A hash of `password` for `MAGLEV_FRONTEND_PASSWORD_HASH`:
/// `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
pub fn hash_password(password: &str) -> String {
    hash_with(password, ITERATIONS)
}

fn hash_with(password: &str, rounds: u32) -> String {
    let salt = random::<16>();
    let mut out = [0u8; digest::SHA256_OUTPUT_LEN];
    let iterations = NonZeroU32::new(rounds.max(1)).expect("non-zero");
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    format!("pbkdf2-sha256${iterations}${}${}", hex(&salt), hex(&out))
}

impl Credentials {
    /// Credentials with a plain password.
    pub fn with_password(user: &str, password: &str) -> Credentials {
        Credentials {
            user: user.to_string(),
            secret: Secret::Plain(password.as_bytes().to_vec()),
        }
    }

    /// Credentials with a hash from [`hash_password`].
    pub fn with_hash(user: &str, hash: &str) -> Result<Credentials, HashError> {
        let parts: Vec<&str> = hash.trim().split('$').collect();
        let [kind, iterations, salt, hash] = parts[..] else {
            return Err(HashError("expected pbkdf2-sha256$ROUNDS$SALT$HASH"));
        };
        if kind != "pbkdf2-sha256" {
            return Err(HashError("only pbkdf2-sha256 hashes are known"));
        }
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or(HashError("the round count is not a positive number"))?;
        let salt = unhex(salt).ok_or(HashError("the salt is not hex"))?;
        let hash = unhex(hash)
            .filter(|h| h.len() == digest::SHA256_OUTPUT_LEN)
            .ok_or(HashError("the hash is not 64 hex digits"))?;
        Ok(Credentials {
            user: user.to_string(),
            secret: Secret::Pbkdf2 {
                iterations,
                salt,
                hash,
            },
        })
    }

    /// Whether `user`/`password` match, in time that does not depend on
    /// how much of either matched.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &random::<32>());
        let same = |a: &[u8], b: &[u8]| hmac::verify(&key, a, hmac::sign(&key, b).as_ref()).is_ok();
        let user_ok = same(user.as_bytes(), self.user.as_bytes());
        let password_ok = match &self.secret {
            Secret::Plain(p) => same(password.as_bytes(), p),
            Secret::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA256,
                *iterations,
                salt,
                password.as_bytes(),
                hash,
            )
            .is_ok(),
        };
        user_ok & password_ok
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// Parses an `Authorization: Basic …` header into user and password.
pub fn basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(value.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The admin side's gate: credentials, sessions and CSRF tokens.
pub struct Gate {
    credentials: Option<Credentials>,
    key: hmac::Key,
    sessions: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate; `None` closes `/admin/` altogether.
    pub fn new(credentials: Option<Credentials>) -> Gate {
        Gate {
            credentials,
            key: hmac::Key::new(hmac::HMAC_SHA256, &random::<32>()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `/admin/` is open at all.
    pub fn enabled(&self) -> bool {
        self.credentials.is_some()
    }

    /// The admin user's name.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(Credentials::user)
    }

    /// Whether an `Authorization` header carries the right credentials.
    pub fn login(&self, authorization: Option<&str>) -> bool {
        let (Some(c), Some((u, p))) = (&self.credentials, authorization.and_then(basic)) else {
            return false;
        };
        c.verify(&u, &p)
    }

    /// Starts a session; returns its id for the cookie.
    pub fn open_session(&self) -> String {
        let id = hex(&random::<32>());
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        s.retain(|_, t| now.duration_since(*t) < SESSION_LIFETIME);
        while s.len() >= MAX_SESSIONS {
            let oldest = s
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            s.remove(&oldest);
        }
        s.insert(id.clone(), now);
        id
    }

    /// The live session named in a `Cookie` header, if any.
    pub fn session(&self, cookie: Option<&str>) -> Option<String> {
        let id = cookie?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_string())?;
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.get(&id)
            .filter(|t| t.elapsed() < SESSION_LIFETIME)
            .map(|_| id)
    }

    /// The CSRF token of a session.
    pub fn csrf(&self, session: &str) -> String {
        hex(hmac::sign(&self.key, session.as_bytes()).as_ref())
    }

    /// Whether `token` is the session's CSRF token (constant time).
    pub fn csrf_ok(&self, session: &str, token: &str) -> bool {
        match unhex(token) {
            Some(t) => hmac::verify(&self.key, session.as_bytes(), &t).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_hashes() {
        let c = Credentials::with_password("ops", "s3cret");
        assert!(c.verify("ops", "s3cret"));
        assert!(!c.verify("ops", "s3cre"));
        assert!(!c.verify("op", "s3cret"));
        assert!(hash_password("x").starts_with("pbkdf2-sha256$600000$"));
        let h = hash_with("s3cret", 1000);
        assert!(h.starts_with("pbkdf2-sha256$1000$"), "{h}");
        let c = Credentials::with_hash("ops", &h).unwrap();
        assert!(c.verify("ops", "s3cret"));
        assert!(!c.verify("ops", "S3cret"));
        for bad in [
            "",
            "md5$1$aa$bb",
            "pbkdf2-sha256$0$aa$bb",
            "pbkdf2-sha256$1$zz$00",
        ] {
            assert!(Credentials::with_hash("ops", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn basic_header() {
        // "ops:pa:ss" (a colon in the password stays in it).
        assert_eq!(
            basic("Basic b3BzOnBhOnNz"),
            Some(("ops".into(), "pa:ss".into()))
        );
        assert_eq!(basic("Bearer x"), None);
        assert_eq!(basic("Basic !!!"), None);
    }

    #[test]
    fn sessions_and_csrf() {
        let g = Gate::new(Some(Credentials::with_password("ops", "pw")));
        assert!(g.login(Some("Basic b3BzOnB3")));
        assert!(!g.login(Some("Basic b3BzOnB4")));
        assert!(!g.login(None));
        let id = g.open_session();
        let cookie = format!("a=b; {COOKIE}={id}");
        assert_eq!(g.session(Some(&cookie)).as_deref(), Some(id.as_str()));
        assert_eq!(g.session(Some("maglev_session=nope")), None);
        let t = g.csrf(&id);
        assert!(g.csrf_ok(&id, &t));
        assert!(!g.csrf_ok(&id, ""));
        assert!(!g.csrf_ok(&g.open_session(), &t));
        assert!(!Gate::new(None).login(Some("Basic b3BzOnB3")));
    }
}
