//! The step bookkeeping every in-process backend shares, written once.
//!
//! candle, ONNX Runtime and libtorch differ in how they load weights and run
//! a forward pass, and in nothing else the harness can see: each checks the
//! input's shape against the context it allows, counts positions, keeps the
//! last-position logits of every sequence, forgets them on reset and samples
//! them greedily. A backend implements [`StepModel`] (the library-specific
//! part) and [`Stepped`] turns it into an [`InferenceBackend`], so the checks
//! and the errors are the same for every library by construction rather
//! than by three copies agreeing.

use crate::harness::{Attribution, BackendError, InferenceBackend, Pick, greedy};

/// How many positions one sequence may use in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The model's own limit (`ModelInfo::max_positions`).
    pub max_positions: u32,
    /// The cell's prompt plus generation: the KV cache is sized for it.
    pub capacity: usize,
}

impl Context {
    /// Positions a sequence may use: the cell's capacity within the model's.
    pub fn allowed(&self) -> usize {
        self.capacity.min(self.max_positions as usize)
    }
}

/// One forward pass as the adapter hands it to the model: `batch` sequences
/// of `len` tokens each, row-major in `ids`, starting at position `start`
/// (the tokens already in the KV cache). The adapter guarantees
/// `batch >= 1`, `len >= 1`, `ids.len() == batch * len` and
/// `start + len <= context().allowed()`.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    pub ids: &'a [u32],
    pub batch: usize,
    pub len: usize,
    pub start: usize,
}

/// The library-specific part of an in-process backend: loading and the
/// forward pass over its own KV cache. Everything else (shape and context
/// checks, the position, the logits, sampling) is [`Stepped`]'s.
pub trait StepModel {
    /// Load the weights and prepare to run; what actually runs.
    fn load(&mut self) -> Result<Attribution, BackendError>;
    /// Forget the KV cache: the next chunk starts at position 0.
    fn reset(&mut self);
    /// Run `chunk` through the model, appending it to the KV cache, and
    /// leave the last position's logits of each sequence in `logits`, one
    /// row per sequence. `logits` holds the previous chunk's rows, so a
    /// backend may reuse their allocations. Returns after the logits are in
    /// host memory (the device synchronisation).
    fn forward(&mut self, chunk: Chunk<'_>, logits: &mut Vec<Vec<f32>>)
    -> Result<(), BackendError>;
    /// The context this model was built for.
    fn context(&self) -> Context;
}

/// A [`StepModel`] as the harness drives it: the shared step bookkeeping.
pub struct Stepped<M> {
    model: M,
    /// Tokens per sequence in the KV cache.
    pos: usize,
    /// Sequences in the current run (set by the first chunk after a reset).
    batch: usize,
    /// The last position's logits of every sequence; empty before a prefill.
    logits: Vec<Vec<f32>>,
}

impl<M: StepModel> Stepped<M> {
    /// The adapter over a model that is not yet loaded.
    pub fn wrap(model: M) -> Self {
        Stepped {
            model,
            pos: 0,
            batch: 0,
            logits: Vec::new(),
        }
    }

    /// Last logits of every sequence (for numerical checks).
    pub fn logits(&self) -> &[Vec<f32>] {
        &self.logits
    }

    /// The library-specific part.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Tokens per sequence in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The checks every backend makes before a forward pass, then the pass.
    fn run(&mut self, ids: &[u32], batch: usize) -> Result<(), BackendError> {
        let len = ids.len().checked_div(batch).unwrap_or(0);
        if len == 0 || len * batch != ids.len() {
            return Err(BackendError::BadInput(format!(
                "{} token ids do not split into {batch} sequences of equal, non-zero length",
                ids.len()
            )));
        }
        // The KV cache holds `self.batch` sequences; a chunk for another
        // number of them would be attended against the wrong rows.
        if self.pos > 0 && batch != self.batch {
            return Err(BackendError::BadInput(format!(
                "a chunk of {batch} sequences after {} cached positions of {}",
                self.pos, self.batch
            )));
        }
        let context = self.model.context();
        if self.pos + len > context.allowed() {
            return Err(BackendError::context_full(
                self.pos + len,
                context.allowed(),
                context.max_positions,
                context.capacity,
            ));
        }
        let chunk = Chunk {
            ids,
            batch,
            len,
            start: self.pos,
        };
        if let Err(e) = self.checked_forward(chunk) {
            // The cache may hold part of the chunk, or (ONNX Runtime, whose
            // past went into the failed call) nothing: start again from an
            // empty one rather than decode at a stale position.
            self.reset();
            return Err(e);
        }
        self.pos += len;
        self.batch = batch;
        Ok(())
    }

    fn checked_forward(&mut self, chunk: Chunk<'_>) -> Result<(), BackendError> {
        self.model.forward(chunk, &mut self.logits)?;
        if self.logits.len() != chunk.batch {
            return Err(BackendError::Library(format!(
                "the forward pass returned {} rows of logits for {} sequences",
                self.logits.len(),
                chunk.batch
            )));
        }
        Ok(())
    }
}

impl<M: StepModel> InferenceBackend for Stepped<M> {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        let attribution = self.model.load()?;
        // A fresh model has an empty cache.
        self.pos = 0;
        self.batch = 0;
        self.logits.clear();
        Ok(attribution)
    }

    fn reset(&mut self) {
        self.model.reset();
        self.pos = 0;
        self.batch = 0;
        self.logits.clear();
    }

    fn prefill(&mut self, prompts: &[Vec<u32>]) -> Result<(), BackendError> {
        // One position counter serves the whole batch: prompts of one length.
        if prompts.windows(2).any(|w| w[0].len() != w[1].len()) {
            return Err(BackendError::BadInput(
                "the prompts of one prefill must have the same length".into(),
            ));
        }
        let ids: Vec<u32> = prompts.iter().flatten().copied().collect();
        self.run(&ids, prompts.len())
    }

    fn sample(&mut self) -> Result<Vec<Pick>, BackendError> {
        Ok(self.logits.iter().map(|row| greedy(row)).collect())
    }

    fn decode_step(&mut self, tokens: &[u32]) -> Result<bool, BackendError> {
        if self.pos + 1 > self.model.context().allowed() {
            return Ok(false);
        }
        self.run(tokens, tokens.len())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose logits are a function of the chunk, recording every
    /// call, so the tests see exactly what the adapter handed it.
    #[derive(Default)]
    struct Fake {
        context: Option<Context>,
        loads: usize,
        resets: usize,
        /// `(start, batch, len, ids)` of every forward pass.
        chunks: Vec<(usize, usize, usize, Vec<u32>)>,
        /// Rows of logits to return instead of computing them.
        canned: Option<Vec<Vec<f32>>>,
        fail: bool,
    }

    impl StepModel for Fake {
        fn load(&mut self) -> Result<Attribution, BackendError> {
            self.loads += 1;
            Ok(Attribution::plain("cpu", "f32", 1, "fake", "0"))
        }

        fn reset(&mut self) {
            self.resets += 1;
        }

        fn forward(
            &mut self,
            chunk: Chunk<'_>,
            logits: &mut Vec<Vec<f32>>,
        ) -> Result<(), BackendError> {
            self.chunks
                .push((chunk.start, chunk.batch, chunk.len, chunk.ids.to_vec()));
            if self.fail {
                return Err(BackendError::Library("fake: failed".into()));
            }
            *logits = match &self.canned {
                Some(rows) => rows.clone(),
                // Each sequence's last token is its argmax over a vocab of 8.
                None => chunk
                    .ids
                    .chunks(chunk.len)
                    .map(|seq| {
                        let last = seq[seq.len() - 1] as usize % 8;
                        (0..8).map(|i| if i == last { 1.0 } else { 0.0 }).collect()
                    })
                    .collect(),
            };
            Ok(())
        }

        fn context(&self) -> Context {
            self.context.unwrap_or(Context {
                max_positions: 64,
                capacity: 6,
            })
        }
    }

    fn loaded(context: Context) -> Stepped<Fake> {
        let mut b = Stepped::wrap(Fake {
            context: Some(context),
            ..Fake::default()
        });
        b.load().unwrap();
        b
    }

    fn tokens(b: &mut Stepped<Fake>) -> Vec<u32> {
        b.sample().unwrap().iter().map(|p| p.token).collect()
    }

    const SIX: Context = Context {
        max_positions: 64,
        capacity: 6,
    };

    #[test]
    fn positions_advance_and_chunks_start_where_the_cache_ends() {
        let mut b = loaded(SIX);
        b.prefill(&[vec![1, 2, 3], vec![4, 5, 6]]).unwrap();
        assert_eq!(b.position(), 3);
        assert_eq!(tokens(&mut b), [3, 6]);
        assert!(b.decode_step(&[7, 1]).unwrap());
        assert_eq!(b.position(), 4);
        assert_eq!(tokens(&mut b), [7, 1]);
        assert_eq!(
            b.model().chunks,
            [(0, 2, 3, vec![1, 2, 3, 4, 5, 6]), (3, 2, 1, vec![7, 1]),]
        );
    }

    #[test]
    fn a_full_context_stops_decode_and_fails_prefill() {
        let mut b = loaded(SIX);
        b.prefill(&[vec![1, 2, 3, 4, 5]]).unwrap();
        assert!(b.decode_step(&[1]).unwrap());
        // Six of six positions used: decode stops, it does not fail.
        assert!(!b.decode_step(&[1]).unwrap());
        assert_eq!(b.position(), 6);
        assert_eq!(b.model().chunks.len(), 2, "no pass past the context");
        b.reset();
        let e = b.prefill(&[vec![1; 7]]).unwrap_err();
        assert!(
            matches!(
                e,
                BackendError::ContextFull {
                    needed: 7,
                    allowed: 6,
                    max_positions: 64,
                    capacity: 6
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("context full"), "{e}");
        // A prefill after cached tokens counts them.
        b.prefill(&[vec![1; 4]]).unwrap();
        let e = b.prefill(&[vec![1; 3]]).unwrap_err();
        assert!(
            matches!(e, BackendError::ContextFull { needed: 7, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn the_model_limit_bounds_the_context_too() {
        let mut b = loaded(Context {
            max_positions: 4,
            capacity: 100,
        });
        let e = b.prefill(&[vec![1; 5]]).unwrap_err();
        assert!(
            matches!(
                e,
                BackendError::ContextFull {
                    needed: 5,
                    allowed: 4,
                    max_positions: 4,
                    capacity: 100
                }
            ),
            "{e:?}"
        );
        b.prefill(&[vec![1; 4]]).unwrap();
        assert!(!b.decode_step(&[1]).unwrap());
    }

    #[test]
    fn bad_shapes_are_refused_before_the_model_runs() {
        let mut b = loaded(SIX);
        let ragged = b.prefill(&[vec![1, 2], vec![3]]).unwrap_err();
        assert!(matches!(ragged, BackendError::BadInput(_)), "{ragged:?}");
        assert_eq!(
            ragged.to_string(),
            "the prompts of one prefill must have the same length"
        );
        // Ragged but divisible (2 + 4 ids into 2 sequences of 3) too.
        assert!(matches!(
            b.prefill(&[vec![1, 2], vec![3, 4, 5, 6]]),
            Err(BackendError::BadInput(_))
        ));
        for empty in [b.prefill(&[]), b.prefill(&[vec![], vec![]])] {
            assert!(matches!(empty, Err(BackendError::BadInput(_))), "{empty:?}");
        }
        assert!(matches!(b.decode_step(&[]), Err(BackendError::BadInput(_))));
        // A decode for another number of sequences than the cache holds.
        b.prefill(&[vec![1, 2], vec![3, 4]]).unwrap();
        let e = b.decode_step(&[1]).unwrap_err();
        assert!(matches!(e, BackendError::BadInput(_)), "{e:?}");
        assert_eq!(b.model().chunks.len(), 1, "only the good prefill ran");
        // After a reset any batch may start.
        b.reset();
        b.prefill(&[vec![5]]).unwrap();
        assert!(b.decode_step(&[6]).unwrap());
    }

    #[test]
    fn reset_forgets_position_logits_and_cache() {
        let mut b = loaded(SIX);
        b.prefill(&[vec![1, 2, 3, 4, 5]]).unwrap();
        assert_eq!(b.logits().len(), 1);
        b.reset();
        assert_eq!(b.model().resets, 1);
        assert_eq!(b.position(), 0);
        assert!(b.logits().is_empty());
        assert!(b.sample().unwrap().is_empty(), "no logits, no picks");
        // The whole context is free again.
        b.prefill(&[vec![1, 2, 3, 4, 5, 6]]).unwrap();
        assert_eq!(b.model().chunks[1].0, 0, "starts at position 0");
    }

    #[test]
    fn load_starts_afresh() {
        let mut b = loaded(SIX);
        b.prefill(&[vec![1, 2, 3]]).unwrap();
        b.load().unwrap();
        assert_eq!(b.model().loads, 2);
        assert_eq!(b.position(), 0);
        assert!(b.logits().is_empty());
    }

    #[test]
    fn sampling_is_greedy_with_the_lowest_index_winning_a_tie() {
        let mut b = Stepped::wrap(Fake {
            canned: Some(vec![
                vec![0.5, 2.0, 2.0, 1.0],
                vec![3.0, -1.0, 3.0, 3.0],
                vec![-2.0, -1.5, -3.0, -1.0],
            ]),
            ..Fake::default()
        });
        b.load().unwrap();
        b.prefill(&[vec![1], vec![2], vec![3]]).unwrap();
        let picks = b.sample().unwrap();
        let got: Vec<(u32, Option<f32>)> = picks.iter().map(|p| (p.token, p.margin)).collect();
        assert_eq!(got, [(1, Some(0.0)), (0, Some(0.0)), (3, Some(0.5))]);
        // Sampling reads the logits; it does not consume them.
        assert_eq!(b.sample().unwrap(), picks);
    }

    #[test]
    fn a_failed_pass_starts_the_next_run_afresh() {
        let mut b = loaded(SIX);
        b.prefill(&[vec![1, 2, 3]]).unwrap();
        b.model.fail = true;
        let e = b.decode_step(&[4]).unwrap_err();
        assert_eq!(e.to_string(), "fake: failed");
        assert_eq!(b.position(), 0);
        assert!(b.logits().is_empty());
        assert_eq!(b.model().resets, 1, "the model's cache is forgotten too");
    }

    #[test]
    fn logits_for_the_wrong_batch_are_an_error() {
        let mut b = Stepped::wrap(Fake {
            canned: Some(vec![vec![1.0, 0.0]]),
            ..Fake::default()
        });
        b.load().unwrap();
        let e = b.prefill(&[vec![1], vec![2]]).unwrap_err();
        assert!(matches!(e, BackendError::Library(_)), "{e:?}");
        assert!(b.logits().is_empty());
    }
}
