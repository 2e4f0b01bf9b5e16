//! The `edgehook top` screen, drawn with ratatui from a [`Model`]; fits 80×24.
//!
//! ```text
//! edgehook 0.1.0 pid 812 up 3h02m │ queue 2.0 MiB of 1.0 GiB │ 1234 pending 0 dead │ in 12.0/s
//!  ENDPOINT      STATE           PENDING  INFL  DELIV/S  FAIL/S    P50    P99  SKEW
//! >spark         online             1200     8     45.0     0.0   12ms   80ms     -
//!  flows         offline, 12s          3     0      0.0     1.0      -      -     -
//! ┌ spark ─────────────────────────────────────────────────────────────────────┐
//! │delivered/s  ▁▂▃▅▇▇▇▇…   now 45.0  max 50.0                                   │
//! │failed/s     ▁▁▁▁▁▁▁▁…   now 0.0   max 0.0                                    │
//! │p50 12ms  p90 40ms  p99 80ms   last error: -                                  │
//! └────────────────────────────────────────────────────────────────────────────┘
//!  ↑↓ select  p pause  r resume  w wake  q quit        paused spark
//! ```

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};
use ratatui::Frame;

use super::model::{EndpointNow, Model, Percentiles};
use crate::admin::render::{age, size};

/// What the screen shows besides the model.
pub struct Screen<'a> {
    pub model: &'a Model,
    pub selected: usize,
    /// The last key action's result, or a connection problem.
    pub message: Option<(&'a str, bool)>,
}

pub fn draw(frame: &mut Frame, screen: &Screen) {
    let [header, table, detail, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(7),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_lines(screen.model)), header);
    let mut state = TableState::default().with_selected(Some(screen.selected));
    frame.render_stateful_widget(endpoint_table(screen.model), table, &mut state);
    if let Some(e) = screen.model.status.endpoints.get(screen.selected) {
        draw_detail(frame, detail, screen.model, e);
    }
    frame.render_widget(Paragraph::new(footer_line(screen.message)), footer);
}

/// Two lines: the daemon, then the queue and the ingest rate.
fn header_lines(m: &Model) -> Vec<Line<'static>> {
    let s = &m.status;
    let bold = Style::default().add_modifier(Modifier::BOLD);
    vec![
        Line::from(vec![
            Span::styled(format!("edgehook {}", s.version), bold),
            Span::raw(format!("  pid {}  up {}", s.pid, age(s.uptime_secs))),
        ]),
        Line::from(vec![
            Span::raw("queue "),
            Span::styled(
                format!("{} of {}", size(s.queue_bytes), size(s.queue_max_bytes)),
                full_style(s.queue_bytes, s.queue_max_bytes),
            ),
            Span::raw(format!(
                "  {} pending  {} dead  ingest {}/s",
                s.pending,
                s.dead,
                rate(m.ingest_per_sec())
            )),
        ]),
    ]
}

fn full_style(bytes: u64, max: u64) -> Style {
    if max > 0 && bytes * 10 >= max * 9 {
        Style::default().fg(Color::Red)
    } else {
        Style::default()
    }
}

/// Column widths; 77 columns with the spacing, so 80 columns hold the table.
const WIDTHS: [u16; 9] = [13, 15, 8, 5, 8, 7, 6, 6, 5];

fn endpoint_table(m: &Model) -> Table<'static> {
    let header = Row::new(
        [
            "ENDPOINT", "STATE", "PENDING", "INFL", "DELIV/S", "FAIL/S", "P50", "P99", "SKEW",
        ]
        .into_iter()
        .enumerate()
        .map(|(i, h)| Cell::from(align(h, i))),
    )
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = m.status.endpoints.iter().map(|e| {
        let last = |v: Vec<f64>| v.last().map(|r| rate(*r)).unwrap_or_else(|| "-".into());
        let latency = m.latency(&e.name);
        let cells = [
            e.name.clone(),
            state_text(e),
            e.pending.to_string(),
            e.in_flight.map_or("-".into(), |n| n.to_string()),
            last(m.delivered(&e.name)),
            last(m.failed(&e.name)),
            latency.map_or("-".into(), |p| millis(p.p50)),
            latency.map_or("-".into(), |p| millis(p.p99)),
            e.clock_skew_secs.map_or("-".into(), skew),
        ];
        Row::new(cells.into_iter().enumerate().map(|(i, c)| {
            let style = if i == 1 {
                state_style(&e.state)
            } else {
                Style::default()
            };
            Cell::from(align(&c, i)).style(style)
        }))
    });
    Table::new(rows, WIDTHS.map(Constraint::Length))
        .header(header)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">")
}

/// Numbers right-aligned in their column, names and states left.
fn align(text: &str, column: usize) -> String {
    let width = WIDTHS[column] as usize;
    let text: String = text.chars().take(width).collect();
    if column < 2 {
        text
    } else {
        format!("{text:>width$}")
    }
}

fn draw_detail(frame: &mut Frame, area: Rect, m: &Model, e: &EndpointNow) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} ", e.name));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [delivered, failed, latency, error] = Layout::vertical([Constraint::Length(1); 4])
        .flex(ratatui::layout::Flex::Start)
        .areas(Rect {
            height: inner.height.min(5),
            ..inner
        });
    spark_line(
        frame,
        delivered,
        "delivered/s",
        &m.delivered(&e.name),
        Color::Green,
    );
    spark_line(frame, failed, "failed/s", &m.failed(&e.name), Color::Red);
    frame.render_widget(Paragraph::new(latency_text(m.latency(&e.name), e)), latency);
    let error_area = Rect {
        height: inner.height.saturating_sub(3),
        ..error
    };
    let last = e.last_error.as_deref().unwrap_or(match e.state.as_str() {
        "orphaned" => "not in the config; re-add it or `edgehook purge`",
        _ => "-",
    });
    frame.render_widget(
        Paragraph::new(format!("last error: {last}")).wrap(Wrap { trim: true }),
        error_area,
    );
}

/// `label ▁▂▅▇… now 45.0 max 50.0` over the last minute.
fn spark_line(frame: &mut Frame, area: Rect, label: &str, rates: &[f64], color: Color) {
    let [label_area, spark_area, value_area] = Layout::horizontal([
        Constraint::Length(13),
        Constraint::Min(10),
        Constraint::Length(22),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(label.to_string()), label_area);
    // The newest rates that fit, scaled ×10 so that rates below 1/s still show.
    let shown = &rates[rates.len().saturating_sub(spark_area.width as usize)..];
    let data: Vec<u64> = shown.iter().map(|r| (r * 10.0).round() as u64).collect();
    let max = rates.iter().copied().fold(0.0, f64::max);
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .max(data.iter().copied().max().unwrap_or(0).max(1))
            .style(Style::default().fg(color)),
        spark_area,
    );
    let now = rates.last().copied().unwrap_or(0.0);
    frame.render_widget(
        Paragraph::new(format!(" now {} max {}", rate(now), rate(max))),
        value_area,
    );
}

fn latency_text(p: Option<Percentiles>, e: &EndpointNow) -> String {
    let latency = match p {
        Some(p) => format!(
            "latency p50 {}  p90 {}  p99 {} (last minute)",
            millis(p.p50),
            millis(p.p90),
            millis(p.p99)
        ),
        None => "latency -".into(),
    };
    match e.clock_skew_secs {
        Some(s) => format!("{latency}   clock skew {}", skew(s)),
        None => latency,
    }
}

fn footer_line(message: Option<(&str, bool)>) -> Line<'static> {
    let mut spans = vec![Span::styled(
        " ↑↓ select  p pause  r resume  w wake  q quit ",
        Style::default().add_modifier(Modifier::DIM),
    )];
    if let Some((text, problem)) = message {
        let style = if problem {
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(Color::Yellow)
        };
        spans.push(Span::styled(format!(" {text}"), style));
    }
    Line::from(spans)
}

/// `offline, 12s` (until the next probe) / `online` / `paused` …
fn state_text(e: &EndpointNow) -> String {
    match (e.state.as_str(), e.next_probe_in_secs) {
        ("offline", Some(secs)) => format!("offline, {}", age(secs)),
        (state, _) => state.to_string(),
    }
}

fn state_style(state: &str) -> Style {
    let color = match state {
        "online" => Color::Green,
        "offline" | "paused" => Color::Yellow,
        "gone" | "orphaned" | "stopped" => Color::Red,
        _ => return Style::default(),
    };
    Style::default().fg(color)
}

/// `45.0` below 1000/s, `12k` above.
fn rate(r: f64) -> String {
    if r >= 1000.0 {
        format!("{:.0}k", r / 1000.0)
    } else {
        format!("{r:.1}")
    }
}

/// `850us`, `12ms`, `2.5s`.
fn millis(secs: f64) -> String {
    if secs < 0.001 {
        format!("{:.0}us", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.0}ms", secs * 1e3)
    } else {
        format!("{secs:.1}s")
    }
}

/// `+7m` (upstream ahead) / `-2h` (behind).
fn skew(secs: i64) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    format!("{sign}{}", age(secs.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(rate(0.5), "0.5");
        assert_eq!(rate(12_345.0), "12k");
        assert_eq!(millis(0.0123), "12ms");
        assert_eq!(millis(0.0008), "800us");
        assert_eq!(millis(2.5), "2.5s");
        assert_eq!(skew(-420), "-7m00s");
        assert_eq!(align("12", 2), "      12");
    }
}
