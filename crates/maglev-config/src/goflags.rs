//! Go's flag syntax. The Go tools took long flags with one dash
//! (`-config FILE`, `-color=false`), and unit files and runbooks written
//! for them still do; the binaries rewrite such words before parsing.

/// Rewrites `-name` and `-name=value` to `--name…` when `name` is one of
/// `long`; every other word (values, command words, short flags, `--x`)
/// is left alone.
pub fn go_style_args<S: AsRef<str>>(
    args: impl IntoIterator<Item = String>,
    long: &[S],
) -> Vec<String> {
    args.into_iter()
        .map(|arg| {
            let name = arg
                .strip_prefix('-')
                .filter(|rest| !rest.starts_with('-'))
                .map(|rest| rest.split('=').next().unwrap_or(rest));
            match name {
                Some(n) if long.iter().any(|l| l.as_ref() == n) => format!("-{arg}"),
                _ => arg,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let args = [
            "maglevc",
            "-color=false",
            "-server",
            "lb1:9090",
            "-o",
            "json",
            "show",
            "backends",
            "--output",
            "-x",
        ]
        .map(String::from);
        assert_eq!(
            go_style_args(args, &["color", "server", "output"]),
            [
                "maglevc",
                "--color=false",
                "--server",
                "lb1:9090",
                "-o",
                "json",
                "show",
                "backends",
                "--output",
                "-x"
            ]
        );
    }
}
