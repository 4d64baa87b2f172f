//! The screen, drawn from a [`View`] (plain data) so it can be tested with
//! ratatui's `TestBackend` and fixed numbers.
//!
//! Top to bottom: a header line (host FQDN, run time, cadence, PAUSED), the
//! VIP table, the tally panel (which backends answer each VIP), the error
//! panel taking the remaining height, and a key-hint line. The VIP table
//! and the tally scroll together (Up/Down); the error panel scrolls on its
//! own (PgUp/PgDn).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TRow, Table};
use ratatui::Frame;

use crate::stats::Class;

/// One VIP table row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Frontend name(s).
    pub name: String,
    /// `address:port`.
    pub address: String,
    /// `http`, `https`, `tcp`.
    pub kind: String,
    /// Success ratio over the window, percent.
    pub ok: Option<f64>,
    /// Latency percentiles, formatted (`-` when none).
    pub p50: String,
    /// 95th.
    pub p95: String,
    /// 99th.
    pub p99: String,
    /// Max.
    pub max: String,
    /// Probes.
    pub n: u64,
    /// Failures.
    pub fail: u64,
    /// Last status.
    pub last: String,
    /// Whether the last probe succeeded.
    pub last_ok: bool,
}

/// One VIP's tally: (value, count, active).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyRow {
    /// Frontend name(s).
    pub name: String,
    /// Values by name.
    pub entries: Vec<(String, u64, bool)>,
}

/// One error panel line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLine {
    /// Wall-clock time.
    pub at: SystemTime,
    /// Frontend name(s).
    pub vip: String,
    /// Class.
    pub class: Class,
    /// Detail.
    pub detail: String,
    /// Occurrences (shown as `×N` when more than one).
    pub count: u64,
}

/// Everything on the screen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    /// The host's FQDN.
    pub host: String,
    /// Run time.
    pub uptime: Duration,
    /// Probe interval.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Probing paused.
    pub paused: bool,
    /// The VIP table.
    pub rows: Vec<Row>,
    /// The tally panel, same order as `rows`.
    pub tallies: Vec<TallyRow>,
    /// Newest first.
    pub errors: Vec<ErrorLine>,
}

/// Scroll positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ui {
    /// First VIP shown.
    pub vip_offset: usize,
    /// First error shown.
    pub error_offset: usize,
}

/// Colours (ANSI-256 indexes, so every terminal and tmux agree) or, with
/// `NO_COLOR`, attributes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Colour on.
    pub color: bool,
}

impl Theme {
    fn fg(&self, c: u8) -> Style {
        if self.color {
            Style::new().fg(Color::Indexed(c))
        } else {
            Style::new()
        }
    }
    fn title(&self) -> Style {
        self.fg(14).add_modifier(Modifier::BOLD)
    }
    fn ok(&self) -> Style {
        self.fg(10)
    }
    fn bad(&self) -> Style {
        if self.color {
            self.fg(9)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }
    fn dim(&self) -> Style {
        if self.color {
            self.fg(244)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    /// A tally value answering now.
    pub fn active(&self) -> Style {
        self.fg(15).add_modifier(Modifier::BOLD)
    }
    /// A drained tally value.
    pub fn drained(&self) -> Style {
        self.dim()
    }
    fn class(&self, c: Class) -> Style {
        match c {
            Class::Timeout => self.fg(11),
            Class::HttpErr => self.fg(13),
            Class::NetErr => self.fg(9),
            Class::Spike => self.fg(14),
        }
    }
}

/// Two largest units: `42s`, `10m30s`, `1h12m`, `2d03h`.
pub fn fmt_uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// `HH:MM:SS.mmm` in UTC.
pub fn fmt_clock(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        d.subsec_millis()
    )
}

fn fmt_interval(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// How many rows each part gets: (table, tally, errors) for a body of
/// `height` lines and `n` VIPs. The errors keep at least a title and
/// three lines; the table and tally share the rest, the table first.
fn split(height: u16, n: usize) -> (u16, u16, u16) {
    let n = u16::try_from(n).unwrap_or(u16::MAX);
    let table_need = n.saturating_add(2);
    let tally_need = n.saturating_add(1);
    let errors_min = 4u16;
    if table_need + tally_need + errors_min <= height {
        return (table_need, tally_need, height - table_need - tally_need);
    }
    let space = height.saturating_sub(errors_min);
    let table = (space * 11).div_ceil(20).min(table_need).max(3.min(space));
    let tally = (space - table).min(tally_need);
    (table, tally, height - table - tally)
}

/// Draws `view` on the whole frame.
pub fn render(f: &mut Frame<'_>, view: &View, ui: &mut Ui, theme: Theme, header_name: &str) {
    let area = f.area();
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let (t, y, e) = split(body.height, view.rows.len());
    let [table_area, tally_area, error_area] = Layout::vertical([
        Constraint::Length(t),
        Constraint::Length(y),
        Constraint::Length(e),
    ])
    .areas(body);

    // Header.
    let mut head = vec![
        Span::styled("maglevt", theme.title()),
        Span::raw(format!("  {}  up {}", view.host, fmt_uptime(view.uptime))),
    ];
    if view.paused {
        head.push(Span::raw("  "));
        head.push(Span::styled(
            "PAUSED",
            theme.bad().add_modifier(Modifier::REVERSED),
        ));
    }
    head.push(Span::styled(
        format!(
            "  {} VIP{}  every {} ±10%  timeout {}",
            view.rows.len(),
            if view.rows.len() == 1 { "" } else { "s" },
            fmt_interval(view.interval),
            fmt_interval(view.timeout)
        ),
        theme.dim(),
    ));
    f.render_widget(Paragraph::new(Line::from(head)), top);

    // Keep the scroll inside the list.
    let visible = usize::from(t.saturating_sub(2));
    ui.vip_offset = ui
        .vip_offset
        .min(view.rows.len().saturating_sub(visible.max(1)));
    render_table(f, table_area, view, ui.vip_offset, theme);
    render_tally(f, tally_area, view, ui.vip_offset, theme, header_name);
    let visible_errors = usize::from(e.saturating_sub(1)).max(1);
    ui.error_offset = ui
        .error_offset
        .min(view.errors.len().saturating_sub(visible_errors));
    render_errors(f, error_area, view, ui.error_offset, theme);

    let hint = "q quit  p pause  r reset  Up/Down VIPs  PgUp/PgDn errors";
    f.render_widget(Paragraph::new(Span::styled(hint, theme.dim())), bottom);
}

fn titled(title: String, theme: Theme) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .border_style(theme.dim())
        .title(Span::styled(title, theme.title()))
}

/// Widths of the name and address columns out of what the fixed columns
/// leave: the address first (it identifies the VIP), then the name.
fn name_addr_widths(width: u16, fixed: u16, view: &View) -> (u16, u16) {
    let rest = width.saturating_sub(fixed);
    let longest = |f: fn(&Row) -> &str, title: usize| {
        view.rows
            .iter()
            .map(|r| f(r).chars().count())
            .chain([title])
            .max()
            .unwrap_or(title) as u16
    };
    let max_name = longest(|r| &r.name, 4);
    let max_addr = longest(|r| &r.address, 7);
    let addr = max_addr.min(rest.saturating_sub(max_name.min(6)));
    let name = max_name.min(rest.saturating_sub(addr));
    (name, addr)
}

fn render_table(f: &mut Frame<'_>, area: Rect, view: &View, offset: usize, theme: Theme) {
    let block = titled(" VIPs ".to_string(), theme);
    // OK% P50 P95 P99 MAX N FAIL LAST, and a space between columns.
    let with_kind = area.width >= 100;
    let mut fixed_w: Vec<u16> = vec![5, 5, 5, 5, 5, 7, 5, 7];
    if with_kind {
        fixed_w.insert(0, 5);
    }
    let gaps = fixed_w.len() as u16 + 1;
    let (name_w, addr_w) = name_addr_widths(area.width, fixed_w.iter().sum::<u16>() + gaps, view);
    let mut widths = vec![Constraint::Length(name_w), Constraint::Length(addr_w)];
    widths.extend(fixed_w.iter().map(|w| Constraint::Length(*w)));
    let mut titles = vec!["NAME", "ADDRESS"];
    if with_kind {
        titles.push("KIND");
    }
    titles.extend(["OK%", "P50", "P95", "P99", "MAX", "N", "FAIL", "LAST"]);
    let right = |s: String, w: u16| format!("{s:>w$}", w = usize::from(w));
    let header = TRow::new(titles.iter().enumerate().map(|(i, t)| {
        // Numbers are right-aligned, so are their titles.
        let numeric = i >= if with_kind { 3 } else { 2 } && *t != "LAST";
        let w = if i < 2 { 0 } else { fixed_w[i - 2] };
        Cell::from(if numeric {
            right(t.to_string(), w)
        } else {
            t.to_string()
        })
    }))
    .style(theme.dim().add_modifier(Modifier::BOLD));
    let k = usize::from(with_kind);
    let rows = view.rows.iter().skip(offset).map(|r| {
        let ok = r.ok.map_or("-".to_string(), |v| format!("{v:.1}"));
        let ok_style = match r.ok {
            Some(v) if v >= 100.0 => theme.ok(),
            Some(_) => theme.bad(),
            None => theme.dim(),
        };
        let mut cells = vec![Cell::from(r.name.clone()), Cell::from(r.address.clone())];
        if with_kind {
            cells.push(Cell::from(r.kind.clone()).style(theme.dim()));
        }
        cells.extend([
            Cell::from(right(ok, fixed_w[k])).style(ok_style),
            Cell::from(right(r.p50.clone(), fixed_w[k + 1])),
            Cell::from(right(r.p95.clone(), fixed_w[k + 2])),
            Cell::from(right(r.p99.clone(), fixed_w[k + 3])),
            Cell::from(right(r.max.clone(), fixed_w[k + 4])),
            Cell::from(right(r.n.to_string(), fixed_w[k + 5])),
            Cell::from(right(r.fail.to_string(), fixed_w[k + 6])).style(if r.fail > 0 {
                theme.bad()
            } else {
                Style::new()
            }),
            Cell::from(r.last.clone()).style(if r.last_ok { theme.ok() } else { theme.bad() }),
        ]);
        TRow::new(cells)
    });
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(block);
    f.render_widget(table, area);
}

fn render_tally(
    f: &mut Frame<'_>,
    area: Rect,
    view: &View,
    offset: usize,
    theme: Theme,
    header_name: &str,
) {
    let block = titled(format!(" Answered by ({header_name}) "), theme);
    let name_w = view
        .tallies
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    let lines: Vec<Line<'_>> = view
        .tallies
        .iter()
        .skip(offset)
        .map(|t| {
            let total: u64 = t.entries.iter().map(|e| e.1).sum();
            let name: String = t.name.chars().take(name_w).collect();
            let mut spans = vec![Span::raw(format!("{name:<name_w$} "))];
            if t.entries.is_empty() {
                spans.push(Span::styled("-", theme.dim()));
            }
            for (value, count, active) in &t.entries {
                let pct = (count * 100).checked_div(total).unwrap_or(0);
                spans.push(Span::raw(" "));
                spans.push(Span::styled(
                    format!("{value} {count} {pct}%"),
                    if *active {
                        theme.active()
                    } else {
                        theme.drained()
                    },
                ));
                spans.push(Span::raw(" "));
            }
            Line::from(spans)
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}

fn render_errors(f: &mut Frame<'_>, area: Rect, view: &View, offset: usize, theme: Theme) {
    let title = if view.errors.is_empty() {
        " Errors: none ".to_string()
    } else if offset > 0 {
        format!(
            " Errors ({}), newest first, from #{} ",
            view.errors.len(),
            offset + 1
        )
    } else {
        format!(" Errors ({}), newest first ", view.errors.len())
    };
    let block = titled(title, theme);
    let vip_w = view
        .errors
        .iter()
        .map(|e| e.vip.chars().count())
        .max()
        .unwrap_or(0)
        .min(20);
    let lines: Vec<Line<'_>> = view
        .errors
        .iter()
        .skip(offset)
        .take(usize::from(area.height))
        .map(|e| {
            let vip: String = e.vip.chars().take(vip_w).collect();
            Line::from(vec![
                Span::styled(fmt_clock(e.at), theme.dim()),
                Span::raw(format!(" {vip:<vip_w$} ")),
                Span::styled(format!("{:<8}", e.class.as_str()), theme.class(e.class)),
                Span::raw(format!(" {}", e.detail)),
                Span::styled(
                    if e.count > 1 {
                        format!(" x{}", e.count)
                    } else {
                        String::new()
                    },
                    theme.title(),
                ),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_share_the_body() {
        // 80x24: 22 body lines, 3 VIPs: all shown, errors get the rest.
        assert_eq!(split(22, 3), (5, 4, 13));
        // Many VIPs: the errors keep four lines.
        let (t, y, e) = split(22, 40);
        assert_eq!(e, 4);
        assert_eq!(t + y + e, 22);
        assert!(t >= y);
        // Tiny terminals do not underflow.
        assert_eq!(split(2, 5).0 + split(2, 5).1 + split(2, 5).2, 2);
        assert_eq!(split(0, 5), (0, 0, 0));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_uptime(Duration::from_secs(42)), "42s");
        assert_eq!(fmt_uptime(Duration::from_secs(630)), "10m30s");
        assert_eq!(fmt_uptime(Duration::from_secs(4320)), "1h12m");
        assert_eq!(
            fmt_uptime(Duration::from_secs(2 * 86400 + 3 * 3600)),
            "2d03h"
        );
        assert_eq!(
            fmt_clock(UNIX_EPOCH + Duration::from_millis(86_400_000 + 3_723_045)),
            "01:02:03.045"
        );
        assert_eq!(fmt_interval(Duration::from_millis(100)), "100ms");
        assert_eq!(fmt_interval(Duration::from_secs(2)), "2s");
    }
}
