//! Output: aligned text (colour optional, alignment unchanged by it) and
//! JSON values for `-o json`.

use std::time::Duration;

/// How output looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colour for labels and errors.
    pub color: bool,
}

const BLUE: &str = "\u{1b}[34m";
const RED: &str = "\u{1b}[31m";
const RESET: &str = "\u{1b}[0m";

impl Style {
    /// A label, coloured when colour is on.
    pub fn label(&self, s: &str) -> String {
        if self.color {
            format!("{BLUE}{s}{RESET}")
        } else {
            s.to_string()
        }
    }

    /// An error message, red when colour is on.
    pub fn error(&self, s: &str) -> String {
        if self.color {
            format!("{RED}{s}{RESET}")
        } else {
            s.to_string()
        }
    }
}

/// Visible width: escape sequences do not count.
fn width(s: &str) -> usize {
    let mut w = 0;
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, _) => w += 1,
        }
    }
    w
}

/// Columns padded to the widest cell of each, two spaces apart; the header
/// row is styled as labels.
pub fn table(style: Style, header: &[&str], rows: &[Vec<String>]) -> String {
    let head: Vec<String> = header.iter().map(|h| style.label(h)).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&head).chain(rows.iter()).collect();
    let cols = header.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            all.iter()
                .map(|r| r.get(c).map_or(0, |s| width(s)))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < cols {
                line.push_str(&" ".repeat(widths[c] - width(cell) + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `label:  value` lines, values aligned.
pub fn block(style: Style, pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (l, v) in pairs {
        let pad = " ".repeat(w - l.len() + 2);
        out.push_str(&format!("{}{pad}{v}\n", style.label(&format!("{l}:"))));
    }
    out
}

/// The two largest units: `10m30s`, `1h12m`, `3d4h`, `45s`, `250ms`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = s;
    for (size, name) in units {
        if rest >= size || !parts.is_empty() {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    parts.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_two_units() {
        let s = Duration::from_secs;
        assert_eq!(duration(s(630)), "10m30s");
        assert_eq!(duration(s(4320)), "1h12m");
        assert_eq!(duration(s(45)), "45s");
        assert_eq!(duration(s(3600)), "1h");
        assert_eq!(duration(s(3 * 86_400 + 4 * 3_600 + 5)), "3d4h");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn tables_align_with_and_without_colour() {
        let rows = vec![
            vec!["www".to_string(), "up".to_string()],
            vec!["a-longer-name".to_string(), "down".to_string()],
        ];
        let plain = table(Style { color: false }, &["NAME", "STATE"], &rows);
        assert_eq!(
            plain,
            "NAME           STATE\nwww            up\na-longer-name  down\n"
        );
        let coloured = table(Style { color: true }, &["NAME", "STATE"], &rows);
        let stripped: String = coloured.replace(BLUE, "").replace(RESET, "");
        assert_eq!(stripped, plain, "colour does not move columns");
    }
}
