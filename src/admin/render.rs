//! Human output for the operator commands: aligned tables, compact ages and sizes, and
//! colour only when stdout is a terminal and `NO_COLOR` is not set (no-color.org).

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::deliver::status::Shown;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Green,
    Yellow,
    Red,
    Bold,
    Dim,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Red => "31",
            Color::Bold => "1",
            Color::Dim => "2",
        }
    }
}

/// Whether to colour, decided once per command.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: std::io::stdout().is_terminal() && !no_color,
        }
    }

    #[cfg(test)]
    pub fn plain() -> Style {
        Style { color: false }
    }

    pub fn paint(&self, text: &str, color: Option<Color>) -> String {
        match color {
            Some(c) if self.color => format!("\x1b[{}m{text}\x1b[0m", c.code()),
            _ => text.to_string(),
        }
    }
}

/// The colour of an endpoint state (as named on the admin wire).
pub fn state_color(state: &str) -> Option<Color> {
    match serde_json::from_value::<Shown>(serde_json::Value::from(state)).ok()? {
        Shown::Online => Some(Color::Green),
        Shown::Offline | Shown::Paused => Some(Color::Yellow),
        Shown::Gone | Shown::Orphaned | Shown::Stopped => Some(Color::Red),
    }
}

/// A table printed with columns aligned on the visible width (colour codes excluded).
pub struct Table {
    rows: Vec<Vec<(String, Option<Color>)>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers
                .iter()
                .map(|h| (h.to_string(), Some(Color::Bold)))
                .collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<(String, Option<Color>)>) {
        self.rows.push(cells);
    }

    pub fn render(&self, style: Style) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|(t, _)| t.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, (text, color)) in row.iter().enumerate() {
                line.push_str(&style.paint(text, *color));
                if i + 1 < row.len() {
                    let pad = widths[i] - text.chars().count() + 2;
                    line.push_str(&" ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

/// A plain cell.
pub fn cell(text: impl Into<String>) -> (String, Option<Color>) {
    (text.into(), None)
}

/// `45s`, `12m`, `3h12m`, `2d4h`.
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// `512 B`, `12.3 KiB`, `1.0 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// At most `max` characters, with `…` when cut; one line.
pub fn truncate(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// At most `max` characters, cut in the middle (`…`), so both the start of an error
/// chain and its root cause (at the end: "Connection refused") stay visible.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    let chars: Vec<char> = one_line.chars().collect();
    if chars.len() <= max {
        return one_line;
    }
    let head = max.saturating_sub(1) * 2 / 5;
    let tail = max.saturating_sub(1) - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_compact() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(61), "1m01s");
        assert_eq!(age(3 * 3600 + 12 * 60 + 5), "3h12m");
        assert_eq!(age(2 * 86_400 + 4 * 3600), "2d4h");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(12_595), "12.3 KiB");
        assert_eq!(size(1 << 30), "1.0 GiB");
    }

    #[test]
    fn tables_align_on_visible_width() {
        let mut t = Table::new(&["NAME", "STATE"]);
        t.row(vec![cell("spark"), ("online".into(), Some(Color::Green))]);
        t.row(vec![cell("a"), cell("offline")]);
        assert_eq!(
            t.render(Style::plain()),
            "NAME   STATE\nspark  online\na      offline\n"
        );
        let colored = t.render(Style { color: true });
        assert!(colored.contains("\x1b[32monline\x1b[0m"), "{colored:?}");
    }

    #[test]
    fn shortens_in_the_middle() {
        let err =
            "connect: client error (Connect): tcp connect error: Connection refused (os error 111)";
        let short = shorten(err, 60);
        assert_eq!(short.chars().count(), 60);
        assert!(short.starts_with("connect: client error"), "{short}");
        assert!(
            short.ends_with("Connection refused (os error 111)"),
            "{short}"
        );
        assert_eq!(shorten("short", 60), "short");
    }

    #[test]
    fn truncates_on_characters() {
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("a\nb", 10), "a b");
    }
}
