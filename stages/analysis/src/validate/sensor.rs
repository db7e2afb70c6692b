//! A power sensor that died while the cell ran (TR122, Appendix S.3).
//! Gating already withholds energy from windows without samples; this
//! names the cause, so a cell whose windows are `no_data` because its
//! sensor stopped answering is not mistaken for one whose windows were
//! merely too short for the polling interval.

use assay_core::tables::{EventRow, PowerRow};

// Polling intervals a sensor may stay quiet before the cell's end: a
// loaded machine delays reads, and a poller stops at the cell's end, so a
// gap of one or two intervals is ordinary. Gating uses the same tolerance
// for a window's unread end (`uncovered`).
use assay_measure::energy::QUIET_INTERVALS;

/// Why the sensor's evidence for this cell is dead, or None: no sample for
/// more than `QUIET_INTERVALS` polling intervals before the cell's last
/// event ended, counting from its last sample at or after model load (time
/// zero; the idle baseline is before it).
pub(super) fn sensor_dead(events: &[EventRow], power: &[PowerRow], poll_ms: u32) -> Option<String> {
    let end = events.iter().map(|e| (e.start_ns + e.ns) as i64).max()?;
    let poll = i64::from(poll_ms.max(1)) * 1_000_000;
    let last = power.iter().map(|p| p.t_ns).filter(|t| *t >= 0).max();
    if end - last.unwrap_or(0) <= QUIET_INTERVALS * poll {
        return None;
    }
    let from = match last {
        Some(t) => format!("after {:.1} ms", t as f64 / 1e6),
        None => "after the idle baseline".into(),
    };
    Some(format!(
        "sensor_dead: no power sample {from} of a {:.1} ms cell ({poll_ms} ms polling)",
        end as f64 / 1e6
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(start_ms: u64, ms: u64) -> EventRow {
        EventRow {
            cell: "c".into(),
            phase: "e2e".into(),
            start_ns: start_ms * 1_000_000,
            ns: ms * 1_000_000,
            ..Default::default()
        }
    }

    fn p(t_ms: i64, watts: f64) -> PowerRow {
        PowerRow {
            cell: "c".into(),
            t_ns: t_ms * 1_000_000,
            watts,
        }
    }

    fn baseline() -> Vec<PowerRow> {
        vec![p(-20, 40.0), p(-10, 41.0)]
    }

    #[test]
    fn a_live_sensor_is_not_dead() {
        let mut power = baseline();
        power.extend((1..=10).map(|i| p(i * 10, 70.0)));
        assert_eq!(sensor_dead(&[ev(0, 100)], &power, 10), None);
        // Quiet for the last two intervals only: ordinary jitter.
        power.truncate(power.len() - 2);
        assert_eq!(sensor_dead(&[ev(0, 100)], &power, 10), None);
        // A counter that does not move is a reading (0 W above nothing),
        // not silence: gating decides what it is worth.
        let flat: Vec<PowerRow> = (1..=10).map(|i| p(i * 10, 0.0)).collect();
        assert_eq!(sensor_dead(&[ev(0, 100)], &flat, 10), None);
    }

    #[test]
    fn a_sensor_silent_from_load_on_is_dead() {
        let why = sensor_dead(&[ev(0, 100)], &baseline(), 10).unwrap();
        assert_eq!(
            why,
            "sensor_dead: no power sample after the idle baseline of a 100.0 ms cell (10 ms polling)"
        );
    }

    #[test]
    fn a_sensor_that_stops_mid_cell_is_dead() {
        let mut power = baseline();
        power.extend((1..=3).map(|i| p(i * 10, 70.0)));
        let why = sensor_dead(&[ev(0, 100)], &power, 10).unwrap();
        assert!(why.contains("after 30.0 ms of a 100.0 ms cell"), "{why}");
    }

    #[test]
    fn a_short_cell_without_samples_is_not_dead() {
        // A 15 ms cell at 10 ms polling may end before its first reading.
        assert_eq!(sensor_dead(&[ev(0, 15)], &baseline(), 10), None);
    }

    #[test]
    fn a_cell_without_events_has_nothing_to_judge() {
        assert_eq!(sensor_dead(&[], &baseline(), 10), None);
    }
}
