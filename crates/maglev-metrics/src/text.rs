//! The classic Prometheus text format (0.0.4) from the OpenMetrics text
//! the registry encodes: what `promtool check metrics`, curl users and
//! scrapers that do not ask for OpenMetrics read.
//!
//! The differences that matter: a counter family is named with its
//! `_total` suffix in `# HELP`/`# TYPE`, `info` becomes a gauge named with
//! `_info`, and there is no `# UNIT`, `_created` or `# EOF`.

use std::collections::HashMap;

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut kinds: HashMap<&str, &str> = HashMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                kinds.insert(name, kind);
            }
        }
    }
    let renamed = |name: &str| -> String {
        match kinds.get(name) {
            Some(&"counter") => format!("{name}_total"),
            Some(&"info") => format!("{name}_info"),
            _ => name.to_string(),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", renamed(name)));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let kind = match kind {
                "info" | "stateset" => "gauge",
                "unknown" | "gaugehistogram" => "untyped",
                k => k,
            };
            out.push_str(&format!("# TYPE {} {kind}\n", renamed(name)));
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or("");
        if let Some(base) = name.strip_suffix("_created") {
            if kinds.get(base) == Some(&"counter") {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_info_and_eof() {
        let om = "# HELP maglev_probe Health probes.\n# TYPE maglev_probe counter\nmaglev_probe_total{code=\"L7OK\"} 3\nmaglev_probe_created{code=\"L7OK\"} 1.0\n# HELP maglev_up Up.\n# TYPE maglev_up gauge\n# UNIT maglev_up seconds\nmaglev_up 1\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP maglev_probe_total Health probes.\n# TYPE maglev_probe_total counter\nmaglev_probe_total{code=\"L7OK\"} 3\n# HELP maglev_up Up.\n# TYPE maglev_up gauge\nmaglev_up 1\n"
        );
    }
}
