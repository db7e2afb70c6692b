//! The harness on a fake backend and a virtual clock.
use super::*;
use std::cell::Cell;
use std::rc::Rc;

/// A backend that costs fixed virtual time and can stop early.
struct Fake {
    clock: Rc<Cell<u64>>,
    stop_after: u32,
    steps: u32,
}

struct FakeClock(Rc<Cell<u64>>);
impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

impl InferenceBackend for Fake {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        self.clock.set(self.clock.get() + 1000);
        Ok(Attribution::plain("cpu", "f32", 1, "fake", "0"))
    }
    fn reset(&mut self) {
        self.steps = 0;
    }
    fn prefill(&mut self, _: &[Vec<u32>]) -> Result<(), BackendError> {
        self.clock.set(self.clock.get() + 100);
        Ok(())
    }
    fn sample(&mut self) -> Result<Vec<Pick>, BackendError> {
        self.clock.set(self.clock.get() + 1);
        Ok(vec![greedy(&[0.0, 1.0, 0.5]), greedy(&[2.0, 1.0])])
    }
    fn decode_step(&mut self, _: &[u32]) -> Result<bool, BackendError> {
        self.steps += 1;
        self.clock.set(self.clock.get() + 10);
        Ok(self.steps <= self.stop_after)
    }
}

fn scenario() -> Scenario {
    Scenario {
        name: "s".into(),
        prompt_tokens: 4,
        batch: 2,
        gen_tokens: 5,
        load: None,
    }
}

fn boundary() -> Boundary {
    Boundary {
        tokenization: Default::default(),
        model_load: Default::default(),
        warmup_runs: 1,
        repetitions: 2,
        decode: Default::default(),
        prompts: None,
    }
}

#[test]
fn phases_ordered_and_counted() {
    let t = Rc::new(Cell::new(0));
    let mut b = Fake {
        clock: t.clone(),
        stop_after: 100,
        steps: 0,
    };
    let m = measure_cell(
        &mut b,
        &FakeClock(t),
        "c",
        &scenario(),
        &boundary(),
        &[],
        |_, _| true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(m.runs.len(), 3);
    assert!(m.runs[0].warmup && m.runs[0].cold && !m.runs[1].warmup);
    assert_eq!(m.events[0].phase, "load");
    assert_eq!(m.events[0].ns, 1000);
    let run1: Vec<_> = m.events.iter().filter(|e| e.repetition == 1).collect();
    let phases: Vec<_> = run1.iter().map(|e| e.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "prefill", "ttft", "decode", "decode", "decode", "decode", "e2e"
        ]
    );
    assert_eq!(run1[0].ns, 100);
    assert_eq!(run1[1].ns, 101);
    assert_eq!(run1[2].ns, 11);
    assert_eq!(run1[6].ns, 101 + 4 * 11);
    assert_eq!(run1[6].tokens, 10);
    assert!(
        m.runs
            .iter()
            .all(|r| !r.short && r.gen_tokens_produced == 5)
    );
    // Every run's greedy picks are recorded: 3 runs x 5 steps x 2 sequences.
    assert_eq!(m.outputs.len(), 30);
    assert_eq!(m.outputs[0].token, 1);
    assert_eq!(m.outputs[0].margin, Some(0.5));
    assert_eq!(m.outputs[1].token, 0);
    assert_eq!(m.outputs[29].step, 4);
}

#[test]
fn greedy_prefers_the_lowest_index_and_reports_the_margin() {
    let p = greedy(&[1.0, 3.0, 3.0, 2.5]);
    assert_eq!(p.token, 1);
    assert_eq!(p.margin, Some(0.0));
    let p = greedy(&[1.0, 3.0, 2.5]);
    assert_eq!((p.token, p.margin), (1, Some(0.5)));
    assert_eq!(greedy(&[4.0]).margin, None);
}

#[test]
fn short_generation_is_recorded() {
    let t = Rc::new(Cell::new(0));
    let mut b = Fake {
        clock: t.clone(),
        stop_after: 2,
        steps: 0,
    };
    let m = measure_cell(
        &mut b,
        &FakeClock(t),
        "c",
        &scenario(),
        &boundary(),
        &[],
        |_, _| true,
    )
    .unwrap()
    .unwrap();
    assert!(m.runs.iter().all(|r| r.short && r.gen_tokens_produced == 3));
}

#[test]
fn stop_request_abandons_the_cell() {
    let t = Rc::new(Cell::new(0));
    let mut b = Fake {
        clock: t.clone(),
        stop_after: 100,
        steps: 0,
    };
    let m = measure_cell(
        &mut b,
        &FakeClock(t),
        "c",
        &scenario(),
        &boundary(),
        &[],
        |rep, _| rep < 1,
    )
    .unwrap();
    assert!(m.is_none());
}

/// A tokenizer on the virtual clock: a word per token, ids from 10.
struct FakeCodec {
    clock: Rc<Cell<u64>>,
    loaded: bool,
}

impl TextCodec for FakeCodec {
    fn load(&mut self) -> Result<(), BackendError> {
        self.clock.set(self.clock.get() + 500);
        self.loaded = true;
        Ok(())
    }
    fn encode(&self, text: &str) -> Result<Vec<u32>, BackendError> {
        self.clock.set(self.clock.get() + 7);
        Ok(text
            .split_whitespace()
            .map(|w| 10 + w.len() as u32)
            .collect())
    }
    fn decode(&self, ids: &[u32]) -> Result<String, BackendError> {
        self.clock.set(self.clock.get() + 3);
        let words: Vec<String> = ids.iter().map(|i| format!("w{i}")).collect();
        Ok(words.join(" "))
    }
}

fn text_boundary(model_load: ModelLoad) -> Boundary {
    Boundary {
        tokenization: assay_core::config::Tokenization::Included,
        model_load,
        ..boundary()
    }
}

#[test]
fn text_prompts_are_tokenised_and_outputs_detokenised_inside_ttft_and_e2e() {
    let t = Rc::new(Cell::new(0));
    let mut b = Fake {
        clock: t.clone(),
        stop_after: 100,
        steps: 0,
    };
    let mut codec = FakeCodec {
        clock: t.clone(),
        loaded: false,
    };
    // Five words each: cut to the scenario's four tokens.
    let texts = ["a bb ccc dd e".to_string(), "f g h i j".to_string()];
    let m = measure_cell_with(
        &mut b,
        &FakeClock(t),
        "c",
        &scenario(),
        &text_boundary(ModelLoad::Separate),
        CellPrompts::Text {
            texts: &texts,
            codec: &mut codec,
        },
        |_, _| true,
    )
    .unwrap()
    .unwrap();
    assert!(codec.loaded);
    // The tokenizer loads with the model.
    assert_eq!(m.events[0].ns, 1500);
    let run1: Vec<_> = m.events.iter().filter(|e| e.repetition == 1).collect();
    let phases: Vec<_> = run1.iter().map(|e| e.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "tokenize",
            "prefill",
            "ttft",
            "decode",
            "decode",
            "decode",
            "decode",
            "detokenize",
            "e2e"
        ]
    );
    let (tokenize, prefill, ttft) = (run1[0], run1[1], run1[2]);
    let (detokenize, e2e) = (run1[7], run1[8]);
    assert_eq!((tokenize.ns, tokenize.tokens), (14, 10));
    assert_eq!((prefill.ns, prefill.tokens), (100, 8));
    assert_eq!(ttft.start_ns, tokenize.start_ns);
    assert_eq!(ttft.ns, 14 + 100 + 1);
    assert_eq!((detokenize.ns, detokenize.tokens), (6, 10));
    assert_eq!(e2e.ns, 14 + 101 + 4 * 11 + 6);
    assert_eq!(e2e.start_ns, tokenize.start_ns);
    assert!(m.runs.iter().all(|r| r.prompt_tokens == 4));
    // One text per run and sequence: the outputs as the codec wrote them.
    assert_eq!(m.texts.len(), 3 * 2);
    let first = &m.texts[0];
    assert_eq!((first.prompt_tokens, first.prompt_tokens_encoded), (4, 5));
    assert_eq!(first.prompt, texts[0]);
    assert_eq!(first.output, "w1 w1 w1 w1 w1");
    assert_eq!(m.texts[1].output, "w0 w0 w0 w0 w0");
}

#[test]
fn an_included_load_is_inside_the_first_runs_ttft_and_e2e_only() {
    for (model_load, first_from_load) in [(ModelLoad::Separate, false), (ModelLoad::Included, true)]
    {
        let t = Rc::new(Cell::new(0));
        let mut b = Fake {
            clock: t.clone(),
            stop_after: 100,
            steps: 0,
        };
        let boundary = Boundary {
            model_load,
            ..boundary()
        };
        let m = measure_cell(
            &mut b,
            &FakeClock(t),
            "c",
            &scenario(),
            &boundary,
            &[],
            |_, _| true,
        )
        .unwrap()
        .unwrap();
        let load = &m.events[0];
        assert_eq!((load.phase.as_str(), load.ns), ("load", 1000));
        let phase = |rep: u32, name: &str| {
            m.events
                .iter()
                .find(|e| e.repetition == rep && e.phase == name)
                .unwrap()
                .clone()
        };
        let with_load = if first_from_load { 1000 } else { 0 };
        assert_eq!(phase(0, "ttft").ns, 101 + with_load);
        assert_eq!(phase(0, "e2e").ns, 101 + 4 * 11 + with_load);
        assert_eq!(
            phase(0, "ttft").start_ns,
            if first_from_load { 0 } else { 1000 }
        );
        // The model's own phases, and every later run, are untouched.
        assert_eq!(phase(0, "prefill").ns, 100);
        assert_eq!(phase(1, "ttft").ns, 101);
        assert_eq!(phase(2, "e2e").ns, 101 + 4 * 11);
    }
}

#[test]
fn generate_runs_each_prompt_from_a_reset_cache_for_its_own_length() {
    // The fake samples token 1 for the first sequence; it stops after 2
    // decode steps since its last reset, so a 5-token item gets 3 tokens.
    let clock = Rc::new(Cell::new(0));
    let mut fake = Fake {
        clock,
        stop_after: 2,
        steps: 0,
    };
    let prompts = vec![vec![1, 2], vec![3], vec![4, 5, 6]];
    let out = generate(&mut fake, &prompts, &[1, 5, 2], |_, _| true)
        .unwrap()
        .unwrap();
    assert_eq!(out, vec![vec![1], vec![1, 1, 1], vec![1, 1]]);
    // Ctrl-C between prompts: no answer at all, never a partial one.
    let mut asked = 0;
    let stopped = generate(&mut fake, &prompts, &[1, 1, 1], |i, n| {
        asked += 1;
        assert_eq!(n, 3);
        i < 2
    })
    .unwrap();
    assert!(stopped.is_none() && asked == 3);
}
