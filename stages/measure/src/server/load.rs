//! The load generator: which request goes when. Closed loop keeps N
//! requests in flight; open loop sends on a schedule fixed in advance
//! (constant gaps, or seeded exponential gaps for Poisson arrivals), so a
//! slow server never slows the arrivals down: that is what separates a
//! measured rate from an offered one. Every request is labelled warmup,
//! steady or cooldown by its place in the issue order.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use assay_core::config::{Arrival, LoadProfile};

/// What the generator runs: a resolved load profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub arrival: Arrival,
    pub concurrency: u32,
    /// Requests per second (open loop).
    pub rate: f64,
    pub seed: u64,
    pub warmup: u32,
    pub steady: Bound,
    pub cooldown: u32,
    pub max_in_flight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Requests(u32),
    Seconds(f64),
}

impl Schedule {
    /// One request at a time: the boundary's warmup runs, then its
    /// repetitions (scenarios without a load profile).
    pub fn one_at_a_time(warmup: u32, repetitions: u32) -> Self {
        Schedule {
            arrival: Arrival::Closed,
            concurrency: 1,
            rate: 0.0,
            seed: 0,
            warmup,
            steady: Bound::Requests(repetitions),
            cooldown: 0,
            max_in_flight: 1,
        }
    }

    pub fn from_profile(p: &LoadProfile) -> Self {
        Schedule {
            arrival: p.arrival,
            concurrency: p.concurrency,
            rate: p.rates.first().copied().unwrap_or(0.0),
            seed: p.seed,
            warmup: p.warmup_requests,
            steady: match (p.requests, p.duration_s) {
                (Some(n), _) => Bound::Requests(n),
                (None, Some(s)) => Bound::Seconds(s),
                (None, None) => Bound::Requests(1),
            },
            cooldown: p.cooldown_requests,
            max_in_flight: p.max_in_flight,
        }
    }

    /// Open-loop arrival offsets from the start, for request `index`
    /// onwards: constant gaps, or exponential gaps from the seed.
    pub fn arrivals(&self) -> impl Iterator<Item = Duration> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (arrival, rate) = (self.arrival, self.rate);
        let mut t = 0.0f64;
        let mut first = true;
        std::iter::from_fn(move || {
            if !first {
                let gap = match arrival {
                    Arrival::Poisson => {
                        // Inverse CDF of the exponential; u in (0, 1].
                        let u = 1.0 - rand::RngExt::random::<f64>(&mut rng);
                        -assay_core::stats::ln(u) / rate
                    }
                    _ => 1.0 / rate,
                };
                t += gap;
            }
            first = false;
            Some(Duration::from_secs_f64(t))
        })
    }
}

/// Which part of the run a request belongs to: the stored `window` of
/// its request row.
pub use assay_core::domain::RequestWindow as Window;

/// One request as issued.
#[derive(Debug, Clone)]
pub struct Issued<T> {
    pub index: u32,
    pub window: Window,
    /// When the schedule meant to send it.
    pub scheduled: Instant,
    /// When it was handed to the sender.
    pub sent: Instant,
    pub result: T,
}

/// Decides the window of each next request and when issuing ends. The
/// steady window of a `Seconds` bound starts at its first request's send.
struct Windows {
    warmup: u32,
    steady: Bound,
    cooldown: u32,
    issued: u32,
    steady_started: Option<Instant>,
    steady_issued: u32,
    cooldown_issued: u32,
}

impl Windows {
    fn new(s: &Schedule) -> Self {
        Windows {
            warmup: s.warmup,
            steady: s.steady,
            cooldown: s.cooldown,
            issued: 0,
            steady_started: None,
            steady_issued: 0,
            cooldown_issued: 0,
        }
    }

    /// The window of the next request if it is sent at `at`; `None` when
    /// the run has issued everything.
    fn next(&mut self, at: Instant) -> Option<Window> {
        let window = if self.issued < self.warmup {
            Window::Warmup
        } else {
            let in_steady = match self.steady {
                Bound::Requests(n) => self.steady_issued < n,
                Bound::Seconds(s) => match self.steady_started {
                    None => true,
                    Some(start) => at.duration_since(start).as_secs_f64() < s,
                },
            };
            if in_steady && self.cooldown_issued == 0 {
                self.steady_started.get_or_insert(at);
                self.steady_issued += 1;
                Window::Steady
            } else if self.cooldown_issued < self.cooldown {
                self.cooldown_issued += 1;
                Window::Cooldown
            } else {
                return None;
            }
        };
        self.issued += 1;
        Some(window)
    }
}

/// How often a wait looks at the cancel flag. The flag is a plain atomic set
/// by the signal handler, which cannot wake a tokio task.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Resolves once `cancelled()` turns true.
async fn cancellation(cancelled: &dyn Fn() -> bool) {
    while !cancelled() {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

/// Runs `fut` unless cancelled first: `None` on cancel, within
/// [`CANCEL_POLL`], however long `fut` would have taken (a server that
/// stopped answering, a long gap of a slow open loop).
pub async fn unless_cancelled<T>(
    fut: impl Future<Output = T>,
    cancelled: &dyn Fn() -> bool,
) -> Option<T> {
    tokio::select! {
        biased;
        () = cancellation(cancelled) => None,
        out = fut => Some(out),
    }
}

/// Runs the schedule: `send(index)` performs one request and returns its
/// record. Returns every issued request in issue order, or `None` when
/// `cancelled()` says so, at once, even while waiting on the next arrival or
/// on requests in flight (which are dropped). Runs on a `LocalSet` (requests
/// are local tasks of one thread).
pub async fn drive<F, Fut, T>(
    schedule: &Schedule,
    send: F,
    cancelled: &dyn Fn() -> bool,
) -> Option<Vec<Issued<T>>>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = T> + 'static,
    T: 'static,
{
    // On cancel the run is dropped wherever it waits, and with it its
    // JoinSet, which aborts every request in flight.
    unless_cancelled(run_schedule(schedule, send, cancelled), cancelled)
        .await
        .flatten()
}

/// [`drive`]'s body; `None` when it sees the cancel between requests.
async fn run_schedule<F, Fut, T>(
    schedule: &Schedule,
    send: F,
    cancelled: &dyn Fn() -> bool,
) -> Option<Vec<Issued<T>>>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = T> + 'static,
    T: 'static,
{
    let mut windows = Windows::new(schedule);
    let mut tasks = tokio::task::JoinSet::new();
    let mut issued: Vec<Option<Issued<T>>> = Vec::new();
    // tokio's clock (the same as std's unless a test pauses time).
    let now = || tokio::time::Instant::now().into_std();
    let start = now();
    let limit = match schedule.arrival {
        Arrival::Closed => schedule.concurrency.max(1),
        _ => schedule.max_in_flight.max(1),
    } as usize;
    let mut arrivals = schedule.arrivals();
    let mut index = 0u32;
    loop {
        if cancelled() {
            return None;
        }
        // When the next request is due.
        let scheduled = match schedule.arrival {
            Arrival::Closed => now(),
            _ => start + arrivals.next().unwrap_or_default(),
        };
        if schedule.arrival != Arrival::Closed {
            tokio::time::sleep_until(scheduled.into()).await;
        }
        // Wait for a free slot; for the open loop this wait is queueing.
        while tasks.len() >= limit {
            if let Some(done) = tasks.join_next().await {
                store(&mut issued, done);
            }
        }
        let sent = now();
        let Some(window) = windows.next(sent) else {
            break;
        };
        let scheduled = match schedule.arrival {
            // A closed-loop request is due when its slot frees.
            Arrival::Closed => sent,
            _ => scheduled,
        };
        let fut = send(index);
        let i = index;
        tasks.spawn_local(async move {
            let result = fut.await;
            (i, window, scheduled, sent, result)
        });
        issued.push(None);
        index += 1;
    }
    while let Some(done) = tasks.join_next().await {
        store(&mut issued, done);
    }
    Some(issued.into_iter().flatten().collect())
}

type Done<T> = (u32, Window, Instant, Instant, T);

fn store<T>(issued: &mut [Option<Issued<T>>], done: Result<Done<T>, tokio::task::JoinError>) {
    // A task only ends in error when aborted (cancel) or if it panicked;
    // the sender never panics on server input, so a lost slot stays None.
    if let Ok((index, window, scheduled, sent, result)) = done {
        issued[index as usize] = Some(Issued {
            index,
            window,
            scheduled,
            sent,
            result,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Runs `fut` on a local set of a runtime whose clock is paused (it
    /// jumps to the next timer whenever every task waits).
    fn on_paused_clock<F: Future>(fut: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, fut)
    }

    fn run<T: 'static>(
        schedule: &Schedule,
        send: impl Fn(u32) -> std::pin::Pin<Box<dyn Future<Output = T>>>,
    ) -> Vec<Issued<T>> {
        on_paused_clock(drive(schedule, send, &|| false)).unwrap()
    }

    fn closed(concurrency: u32, warmup: u32, steady: u32, cooldown: u32) -> Schedule {
        Schedule {
            concurrency,
            warmup,
            steady: Bound::Requests(steady),
            cooldown,
            max_in_flight: concurrency,
            ..Schedule::one_at_a_time(0, 1)
        }
    }

    #[test]
    fn windows_are_counted_in_issue_order() {
        let issued = run(&closed(2, 2, 3, 1), |i| Box::pin(async move { i }));
        let windows: Vec<_> = issued.iter().map(|r| r.window.as_str()).collect();
        assert_eq!(
            windows,
            ["warmup", "warmup", "steady", "steady", "steady", "cooldown"]
        );
        assert!(issued.iter().enumerate().all(|(i, r)| r.result == i as u32));
    }

    #[test]
    fn closed_loop_never_exceeds_its_concurrency() {
        let in_flight = Rc::new(RefCell::new((0u32, 0u32)));
        let f = in_flight.clone();
        let issued = run(&closed(3, 0, 12, 0), move |i| {
            let f = f.clone();
            Box::pin(async move {
                {
                    let mut s = f.borrow_mut();
                    s.0 += 1;
                    s.1 = s.1.max(s.0);
                }
                // Virtual time (the runtime's clock is paused).
                tokio::time::sleep(Duration::from_millis(10 + u64::from(i % 3))).await;
                f.borrow_mut().0 -= 1;
            })
        });
        assert_eq!(issued.len(), 12);
        assert_eq!(in_flight.borrow().1, 3);
    }

    #[test]
    fn open_loop_keeps_its_schedule_when_the_server_is_slow() {
        let s = Schedule {
            arrival: Arrival::Constant,
            rate: 100.0,
            warmup: 0,
            steady: Bound::Requests(5),
            cooldown: 0,
            max_in_flight: 64,
            ..Schedule::one_at_a_time(0, 1)
        };
        let issued = run(&s, |_| {
            Box::pin(async { tokio::time::sleep(Duration::from_secs(1)).await })
        });
        let t0 = issued[0].scheduled;
        for (i, r) in issued.iter().enumerate() {
            let offset = r.scheduled.duration_since(t0).as_secs_f64();
            assert!((offset - i as f64 * 0.01).abs() < 1e-6, "{i}: {offset}");
            assert!(r.sent.duration_since(r.scheduled) < Duration::from_millis(1));
        }
    }

    #[test]
    fn a_full_open_loop_queues_and_says_so() {
        let s = Schedule {
            arrival: Arrival::Constant,
            rate: 1000.0,
            steady: Bound::Requests(4),
            max_in_flight: 1,
            ..Schedule::one_at_a_time(0, 1)
        };
        let issued = run(&s, |_| {
            Box::pin(async { tokio::time::sleep(Duration::from_millis(100)).await })
        });
        // Each waits for the previous one to finish: 100 ms apart.
        let queued: Vec<_> = issued
            .iter()
            .map(|r| r.sent.duration_since(r.scheduled).as_millis())
            .collect();
        assert_eq!(queued[0], 0);
        assert!(queued[3] >= 290, "{queued:?}");
    }

    #[test]
    fn poisson_arrivals_are_seeded_and_have_the_right_mean() {
        let s = Schedule {
            arrival: Arrival::Poisson,
            rate: 4.0,
            seed: 7,
            ..Schedule::one_at_a_time(0, 1)
        };
        let a: Vec<_> = s.arrivals().take(4001).collect();
        let b: Vec<_> = s.arrivals().take(4001).collect();
        assert_eq!(a, b);
        let mean_gap = a[4000].as_secs_f64() / 4000.0;
        assert!((mean_gap - 0.25).abs() < 0.02, "{mean_gap}");
        let other = Schedule {
            seed: 8,
            ..s.clone()
        };
        assert_ne!(other.arrivals().nth(5), a.get(5).copied());
    }

    #[test]
    fn a_duration_bound_ends_the_steady_window_in_time() {
        let s = Schedule {
            arrival: Arrival::Constant,
            rate: 10.0,
            warmup: 1,
            steady: Bound::Seconds(1.0),
            cooldown: 2,
            max_in_flight: 8,
            ..Schedule::one_at_a_time(0, 1)
        };
        let issued = run(&s, |_| Box::pin(async {}));
        let steady = issued.iter().filter(|r| r.window == Window::Steady).count();
        // Sends at 0.1 s .. 1.0 s (exclusive of the end) are steady.
        assert_eq!(steady, 10);
        assert_eq!(issued.last().unwrap().window, Window::Cooldown);
        assert_eq!(issued.len(), 13);
    }

    /// Drives `schedule` on the paused clock with a cancel that comes
    /// `after` (virtual time): what drive returned and when it returned.
    fn cancelled_after<T: 'static>(
        schedule: &Schedule,
        send: impl Fn(u32) -> std::pin::Pin<Box<dyn Future<Output = T>>>,
        after: Duration,
    ) -> (Option<Vec<Issued<T>>>, Duration) {
        on_paused_clock(async {
            let t0 = tokio::time::Instant::now();
            let cancelled = move || tokio::time::Instant::now() >= t0 + after;
            // A guard in virtual time: a drive deaf to the cancel fails
            // here instead of parking the runtime forever.
            let out = tokio::time::timeout(after * 100, drive(schedule, send, &cancelled))
                .await
                .expect("drive ignored the cancel");
            (out, t0.elapsed())
        })
    }

    #[test]
    fn cancel_does_not_wait_for_a_request_that_never_ends() {
        let (out, took) = cancelled_after(
            &closed(2, 0, 4, 0),
            |_| Box::pin(std::future::pending::<()>()),
            Duration::from_secs(3),
        );
        assert!(out.is_none());
        assert!(took < Duration::from_secs(3) + 2 * CANCEL_POLL, "{took:?}");
    }

    #[test]
    fn cancel_does_not_wait_for_a_distant_arrival() {
        // One request every 1000 s; cancelled 2 s into the first gap.
        let s = Schedule {
            arrival: Arrival::Constant,
            rate: 0.001,
            steady: Bound::Requests(3),
            max_in_flight: 4,
            ..Schedule::one_at_a_time(0, 1)
        };
        let (out, took) = cancelled_after(&s, |_| Box::pin(async {}), Duration::from_secs(2));
        assert!(out.is_none());
        assert!(took < Duration::from_secs(2) + 2 * CANCEL_POLL, "{took:?}");
    }

    #[test]
    fn a_run_that_ends_before_the_cancel_is_whole() {
        let (out, _) = cancelled_after(
            &closed(2, 1, 4, 1),
            |i| {
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    i
                })
            },
            Duration::from_secs(60),
        );
        let issued = out.expect("not cancelled");
        assert_eq!(issued.len(), 6);
        assert!(issued.iter().enumerate().all(|(i, r)| r.result == i as u32));
    }
}
