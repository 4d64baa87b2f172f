//! maglevc's man page and shell completions, rendered from the same flag
//! definitions the binary parses (`cargo xtask dist` writes them out).

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

use crate::args::Flags;

/// Escapes text for roff: backslashes, hyphens (so they stay ASCII
/// hyphen-minus in copy and paste), and a leading control character.
fn esc(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// (command, what it does) for the COMMANDS section.
const COMMANDS: &[(&str, &str)] = &[
    ("show version", "maglevc's version (needs no server)."),
    ("show frontends", "Every frontend: address, protocol, port, state, active pool."),
    ("show frontend N", "One frontend: its settings, then its pools as a hierarchy with configured and effective weight, state, and the buckets VPP gives each backend."),
    ("show frontend N buckets", "The Maglev new-flow table predicted from the frontend's backends: slots per backend, computed exactly as VPP does."),
    ("show backends", "Every backend: address, state, enabled, health check, last probe result."),
    ("show backend N", "One backend, with its recent transitions."),
    ("show healthchecks", "Every health check."),
    ("show healthcheck N", "One health check's parameters."),
    ("show vpp info", "The connected VPP: version, build, pid, boot time, connected since."),
    ("show vpp lb state", "VPP's load-balancer configuration, VIPs and application servers with weights and buckets."),
    ("show vpp lb counters", "Per-VIP packet counters."),
    ("sync vpp lb state [N] [--dry-run]", "Reconcile VPP with the desired state, for every frontend or one; --dry-run prints the plan and sends nothing."),
    ("set backend N pause|resume|enable|disable", "Operator actions: pause or resume health checking, take a backend out of service (flushing its flows) or put it back."),
    ("set frontend N pool P backend B weight W", "A runtime weight (0-100) for one pool member, until the next reload."),
    ("config check", "Validate maglevd's config file as it is on disk now."),
    ("config reload", "Reload it (the same path as SIGHUP); a bad file keeps the running config."),
    ("watch events [num N] [log [level L]] [backend] [frontend]", "Stream events, one JSON object per line, until N events, any key, or Ctrl-C."),
    ("lookup frontend N SRC[:PORT] [DST-PORT]", "Which backend a new flow from that client would hit, from the predicted table."),
    ("quit, exit", "Leave the shell."),
];

/// The man page, `maglevc.1`.
pub fn man_page() -> io::Result<String> {
    let cmd = Flags::command().after_help(None::<&str>);
    let man = clap_mangen::Man::new(cmd).date(env!("CARGO_PKG_VERSION"));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    out.extend_from_slice(
        format!(
            ".SH DESCRIPTION\n{}\n.PP\n{}\n",
            esc(
                "maglevc talks to maglevd over its gRPC API. With a command it runs that \
                 command and exits, for runbooks and scripts; without one it is an \
                 interactive shell."
            ),
            esc("Keywords match by unique prefix, and an exact match wins: \
                 \"sh ba\" is \"show backends\". Text output aligns whether colour is on or \
                 off; -o json prints one stable JSON document per command \
                 (one object per line for watch events)."),
        )
        .as_bytes(),
    );
    man.render_options_section(&mut out)?;
    let mut s = String::from_utf8_lossy(&out).into_owned();
    s.push_str(".SH COMMANDS\n");
    for (c, what) in COMMANDS {
        s.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(c), esc(what)));
    }
    s.push_str(&format!(
        ".SH INTERACTIVE SHELL\n{}\n.PP\n{}\n",
        esc(
            "Tab completes keywords and live names (frontends, backends, pools of the \
             frontend named on the line, health checks), fetched from maglevd. \
             \"?\" prints the line, then what may follow at the cursor (or what the \
             word under the cursor may become), and gives the line back unchanged. \
             Up and Down walk the history, which persists across sessions. \
             Ctrl-C clears the line or stops a running command; quit, exit or \
             Ctrl-D on an empty line leaves."
        ),
        esc(
            "The shell starts while maglevd is down; each command says so until \
             it is reachable."
        ),
    ));
    s.push_str(
        ".SH EXIT STATUS\n.TP\n0\nSuccess.\n.TP\n1\nmaglevd answered with an error \
         (its message alone is printed), or could not be reached.\n.TP\n2\nA usage \
         error: the word that did not match is named.\n",
    );
    s.push_str(&format!(
        ".SH ENVIRONMENT\n.TP\nMAGLEV_SERVER\n{}\n.TP\nMAGLEV_TLS_CA, MAGLEV_TLS_CERT, MAGLEV_TLS_KEY, MAGLEV_TLS_SERVER_NAME\n{}\n.TP\nMAGLEVC_HISTORY\n{}\n.TP\nNO_COLOR\n{}\n",
        esc("maglevd's address when --server is not given (default: unix:/run/vpp-maglev/maglevd.sock when it exists, else localhost:9090)."),
        esc("The same as --tls-ca, --tls-cert, --tls-key and --tls-server-name."),
        esc("The shell's history file (default ~/.maglevc_history); none keeps no history."),
        esc("When set, colour is off unless --color true is given."),
    ));
    s.push_str(&format!(
        ".SH EXAMPLES\n.nf\n{}\n.fi\n",
        esc("maglevc show frontends\n\
             maglevc --server lb1:9090 show backends\n\
             maglevc --server lb1:9443 --tls-ca ca.pem --tls-cert ops.pem --tls-key ops.key set backend web1 disable\n\
             maglevc -o json show frontend www | jq '.pools[0].backends'\n\
             maglevc sync vpp lb state www --dry-run\n\
             maglevc watch events num 10 backend\n\
             maglevc lookup frontend www 198.51.100.7:40000 443"),
    ));
    s.push_str(".SH SEE ALSO\nmaglevd(8), maglevt(1)\n");
    Ok(s)
}

/// The bash completion: flags and their values, and command words with
/// live names from maglevd (`maglevc --complete`, asked with the same
/// `--server` as the line being completed; keywords only when maglevd
/// does not answer within a second).
const BASH: &str = r#"# bash completion for maglevc (generated by cargo xtask dist)
_maglevc() {
    # The words come from the line itself: COMP_WORDS splits at every
    # COMP_WORDBREAKS character, so `--server host:port` would arrive as
    # three words and shift every command word after it.
    local line="${COMP_LINE:0:COMP_POINT}" words=()
    read -ra words <<< "$line"
    [[ -z "$line" || "$line" == *[[:space:]] ]] && words+=("")
    local n=${#words[@]}
    local cur="${words[n-1]}" prev=""
    (( n > 1 )) && prev="${words[n-2]}"
    case "$prev" in
        --server|--tls-server-name) return 0 ;;
        --history|--tls-ca|--tls-cert|--tls-key) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
        --color) COMPREPLY=($(compgen -W "true false" -- "$cur")); return 0 ;;
        -o|--output) COMPREPLY=($(compgen -W "text json" -- "$cur")); return 0 ;;
    esac
    if [[ "$cur" == -* && "$cur" != --dry-run* ]]; then
        COMPREPLY=($(compgen -W "--server --tls-ca --tls-cert --tls-key --tls-server-name --color --output --history --help --version --dry-run" -- "$cur"))
        return 0
    fi
    local IFS=$'\n'
    COMPREPLY=($("${words[0]}" --complete "${words[@]:1}" 2>/dev/null))
    return 0
}
complete -F _maglevc maglevc
"#;

/// A completion script for `shell`: bash completes command words and live
/// names too; zsh and fish complete the flags and their values.
pub fn completion(shell: Shell) -> String {
    if shell == Shell::Bash {
        return BASH.to_string();
    }
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Flags::command(), "maglevc", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `man/maglevc.1` and `completions/{maglevc.bash,_maglevc,maglevc.fish}`
/// under `dir`; returns the files written.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let man = dir.join("man");
    let comp = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    let mut files = vec![man.join("maglevc.1")];
    std::fs::write(&files[0], man_page()?)?;
    for (shell, name) in [
        (Shell::Bash, "maglevc.bash"),
        (Shell::Zsh, "_maglevc"),
        (Shell::Fish, "maglevc.fish"),
    ] {
        let p = comp.join(name);
        std::fs::write(&p, completion(shell))?;
        files.push(p);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_has_every_section_and_command() {
        let m = man_page().unwrap();
        assert!(m.starts_with(".ie") || m.contains(".TH maglevc 1"), "{m}");
        for sec in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "COMMANDS",
            "INTERACTIVE SHELL",
            "EXIT STATUS",
            "ENVIRONMENT",
            "EXAMPLES",
        ] {
            assert!(m.contains(&format!(".SH {sec}")), "no {sec} section");
        }
        assert!(m.contains("\\-\\-server"));
        assert!(m.contains("MAGLEV_SERVER"));
        // Every top-level keyword of the command tree is documented.
        let commands = &m[m.find(".SH COMMANDS").unwrap()..m.find(".SH INTERACTIVE").unwrap()];
        for (w, _) in crate::help(&[]).unwrap() {
            assert!(commands.contains(&w), "{w} missing from COMMANDS");
        }
    }

    #[test]
    fn completions_know_the_flags() {
        let bash = completion(Shell::Bash);
        assert!(bash.contains("--server") && bash.contains("--output"));
        assert!(bash.contains("text json") && bash.contains("--complete"));
        assert!(completion(Shell::Zsh).contains("#compdef maglevc"));
        assert!(completion(Shell::Fish).contains("complete -c maglevc"));
        let dir = tempfile::tempdir().unwrap();
        let files = write_all(dir.path()).unwrap();
        assert_eq!(files.len(), 4);
        assert!(files.iter().all(|f| f.metadata().unwrap().len() > 100));
    }
}
