use super::*;

#[test]
fn rows_round_trip_through_parquet() {
    let rows = vec![EventRow {
        cell: "c".into(),
        repetition: 0,
        warmup: true,
        cold: true,
        phase: "decode".into(),
        token_index: Some(3),
        tokens: 1,
        start_ns: 100,
        ns: 12345,
    }];
    let bytes = to_parquet(&rows).unwrap();
    assert_eq!(bytes, to_parquet(&rows).unwrap());
    let back: Vec<EventRow> = from_parquet(&bytes).unwrap();
    assert_eq!(back, rows);
    let empty: Vec<EventRow> = from_parquet(&to_parquet::<EventRow>(&[]).unwrap()).unwrap();
    assert!(empty.is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// The columnar event reader and the serde path agree row for row.
    #[test]
    fn columnar_events_match_the_serde_path(
        raw in proptest::collection::vec(
            (0u32..4, proptest::bool::ANY, proptest::bool::ANY, 0usize..5,
             proptest::option::of(0u32..300), 0u32..5000, proptest::num::u64::ANY, proptest::num::u64::ANY),
            0..200,
        )
    ) {
        let phases = ["load", "prefill", "ttft", "decode", "e2e"];
        let rows: Vec<EventRow> = raw
            .into_iter()
            .map(|(rep, warmup, cold, phase, token_index, tokens, start_ns, ns)| EventRow {
                cell: format!("b/m/s{}", rep % 2),
                repetition: rep,
                warmup,
                cold,
                phase: phases[phase].to_string(),
                token_index,
                tokens,
                start_ns,
                ns,
            })
            .collect();
        let bytes = to_parquet(&rows).unwrap();
        let serde: Vec<EventRow> = from_parquet(&bytes).unwrap();
        proptest::prop_assert_eq!(&events_from_parquet(&bytes).unwrap(), &serde);
        proptest::prop_assert_eq!(&serde, &rows);
        let columns = EventColumns::from_parquet(bytes, true).unwrap();
        proptest::prop_assert_eq!(column_rows(&columns), column_rows(&EventColumns::from_rows(&rows)));
        proptest::prop_assert_eq!(column_rows(&columns), expected_columns(&rows));
        // A slice is the same rows.
        let half = rows.len() / 2;
        proptest::prop_assert_eq!(
            column_rows(&columns.slice(half, rows.len() - half)),
            expected_columns(&rows[half..])
        );
    }
}

/// What `EventColumns` holds for each row: everything but `start_ns`,
/// the phase as a code.
type ColumnRow = (String, Phase, u32, bool, bool, Option<u32>, u32, u64);

fn column_rows(c: &EventColumns) -> Vec<ColumnRow> {
    let cell = c.cell.as_ref().unwrap();
    (0..c.len())
        .map(|i| {
            (
                cell.value(i).to_string(),
                c.phase(i),
                c.repetition[i],
                c.warmup.value(i),
                c.cold.value(i),
                c.token_index(i),
                c.tokens[i],
                c.ns[i],
            )
        })
        .collect()
}

fn expected_columns(rows: &[EventRow]) -> Vec<ColumnRow> {
    rows.iter()
        .map(|e| {
            (
                e.cell.clone(),
                Phase::from_name(&e.phase),
                e.repetition,
                e.warmup,
                e.cold,
                e.token_index,
                e.tokens,
                e.ns,
            )
        })
        .collect()
}

#[test]
fn event_columns_know_phases_long_names_and_empty_tables() {
    let row = |cell: &str, phase: &str| EventRow {
        cell: cell.into(),
        phase: phase.into(),
        ..Default::default()
    };
    // Names past 12 bytes live outside the views; unknown phases are
    // `Other`, known ones keep their codes around them.
    let long = "backend-with-a-long-name/model/scenario";
    let rows = vec![
        row(long, "decode"),
        row(long, "a-phase-name-longer-than-twelve"),
        row(long, "decode"),
        row("b/m/s", "e2e"),
        row("b/m/s", "e2e-ish"),
    ];
    let c = EventColumns::from_parquet(to_parquet(&rows).unwrap(), true).unwrap();
    assert_eq!(column_rows(&c), expected_columns(&rows));
    let phases: Vec<Phase> = (0..c.len()).map(|i| c.phase(i)).collect();
    use Phase::*;
    assert_eq!(phases, [Decode, Other, Decode, E2e, Other]);
    assert!(c.cell.is_some());
    assert!(
        EventColumns::from_parquet(to_parquet(&rows).unwrap(), false)
            .unwrap()
            .cell
            .is_none()
    );
    let empty = EventColumns::from_parquet(to_parquet::<EventRow>(&[]).unwrap(), true).unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        Phase::KNOWN.map(|p| Phase::from_name(p.name())),
        Phase::KNOWN
    );
}

#[test]
fn the_columnar_reader_names_what_is_wrong() {
    let bytes = to_parquet(&[RunRow::default()]).unwrap();
    let err = events_from_parquet(&bytes).unwrap_err();
    assert!(err.contains("no column phase"), "{err}");
    let err = EventColumns::from_parquet(bytes, false).unwrap_err();
    assert!(err.contains("no column phase"), "{err}");
    let err = EventColumns::from_parquet(b"not parquet".to_vec(), false).unwrap_err();
    assert!(!err.is_empty());
}

#[test]
fn typed_views_parse_the_stored_strings() {
    use crate::domain::{EnergyStatus, Evidence, FitForm, FitX, FitY, RunStatus, TokensSource};
    let s = SummaryRow {
        phase: "decode".into(),
        evidence: "measured".into(),
        ..Default::default()
    };
    assert_eq!(
        (s.phase(), s.evidence()),
        (Phase::Decode, Some(Evidence::Measured))
    );
    assert!(s.is_measured());
    let c = CostRow {
        phase: "prefill-ish".into(),
        evidence: "simulated".into(),
        ..Default::default()
    };
    assert_eq!(c.phase(), Phase::Other);
    assert!(!c.is_measured());
    let v = ValidationRow {
        status: "degraded".into(),
        ..Default::default()
    };
    assert_eq!(v.status(), Some(RunStatus::Degraded));
    assert!(!v.is_ok() && !v.is_measured());
    let r = RequestRow {
        window: "steady".into(),
        status: "ok".into(),
        ..Default::default()
    };
    assert!(r.is_steady() && r.is_ok());
    let r = RequestRow {
        window: "cooldown".into(),
        status: "stall".into(),
        ..Default::default()
    };
    assert!(!r.is_steady() && !r.is_ok());
    let e = EnergyRow {
        status: "no_data".into(),
        ..Default::default()
    };
    assert_eq!(e.status(), Some(EnergyStatus::NoData));
    let l = LoadRow {
        tokens_source: "mixed".into(),
        ..Default::default()
    };
    assert_eq!(l.tokens_source(), Some(TokensSource::Mixed));
    let f = FitRow {
        form: "log-log".into(),
        x: "params".into(),
        y: "decode_total_ms".into(),
        ..Default::default()
    };
    assert_eq!(
        (f.form(), f.x(), f.y()),
        (
            Some(FitForm::LogLog),
            Some(FitX::Params),
            Some(FitY::DecodeTotalMs)
        )
    );
}
