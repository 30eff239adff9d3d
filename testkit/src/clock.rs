//! Simulated time: tokio's paused clock, moved only by the runner and by the latency pump.
//!
//! A run executes on a current-thread runtime whose clock starts paused. Tokio would normally
//! *auto-advance* a paused clock whenever the runtime has nothing to do, but the engine's SQLite
//! statements run on threads of their own (sqlx's workers for reads, the engine's writer thread
//! for writes): while one is in flight the runtime looks idle and would jump the clock to the
//! next timer (with sqlx's pools, that was the 30 s acquire timeout: every query failed with
//! "pool timed out"). So a [`ClockHold`] (a parked `spawn_blocking` task, which tokio documents as
//! inhibiting auto-advance) is held for the whole run, and time moves only in two ways:
//!
//! - the runner calls [`SimClock::advance`] between operations (random-walk steps, waits, ping
//!   intervals): deterministic amounts at deterministic points;
//! - simulated hypervisor latency: each call registers its wake-up time with [`SimClock::sleep`]
//!   and the [`pump`] advances the clock to the earliest registered wake-up, but only once every
//!   task that can run has run and no database statement is in flight. Database work thus
//!   takes no simulated time, and a call's latency is exactly what the latency model drew.
//!
//! "Every task that can run has run" includes the runner itself. The runner is the future given
//! to `block_on`, which tokio polls outside its run queue, only between batches of scheduled
//! tasks; how many tasks ran before that point depends on how often the pump spun waiting for
//! SQLite's thread, i.e. on wall time. So the runner is wrapped in [`Tracked`] and the pump
//! does not advance while the runner has been woken but not yet polled.
//!
//! With one operation in flight this is a deterministic discrete-event simulation. With many in
//! flight (create waves with `concurrency` > 1) the interleaving of database work still depends
//! on the OS scheduler, so such phases are not replayable to the bit.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// The longest single jump of the pump: an engine timeout (a timer the pump does not see) that
/// falls between now and the next wake-up fires no more than this late.
pub const MAX_PUMP_STEP: Duration = Duration::from_secs(1);

/// If the database stays busy this long (wall time) while sleepers wait, the pump advances
/// anyway rather than hang (counted in [`SimClock::forced_advances`]).
const BUSY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Wake-ups registered by simulated latency, and the time the run started.
#[derive(Debug)]
pub struct SimClock {
    sleepers: Mutex<BTreeSet<(Instant, u64)>>,
    next_id: AtomicU64,
    registered: Notify,
    start: Instant,
    forced: AtomicU64,
}

impl SimClock {
    /// A clock starting now. Call inside the run's (paused) runtime.
    pub fn new() -> Self {
        Self {
            sleepers: Mutex::new(BTreeSet::new()),
            next_id: AtomicU64::new(0),
            registered: Notify::new(),
            start: Instant::now(),
            forced: AtomicU64::new(0),
        }
    }

    /// Simulated time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Advances simulated time by `d` (between operations), rounded up to whole milliseconds.
    pub async fn advance(&self, d: Duration) {
        if !d.is_zero() {
            tokio::time::advance(whole_millis(d)).await;
        }
    }

    /// Sleeps `d` of simulated time, letting the pump know when to wake us.
    pub async fn sleep(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let deadline = Instant::now() + whole_millis(d);
        let key = (deadline, self.next_id.fetch_add(1, Ordering::Relaxed));
        self.lock().insert(key);
        let _registered = Registered { clock: self, key };
        self.registered.notify_one();
        tokio::time::sleep_until(deadline).await;
    }

    /// How often the pump advanced while the database was busy (should be 0).
    pub fn forced_advances(&self) -> u64 {
        self.forced.load(Ordering::Relaxed)
    }

    fn earliest(&self) -> Option<Instant> {
        self.lock().first().map(|(t, _)| *t)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(Instant, u64)>> {
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

/// `d` rounded up to whole milliseconds: tokio's timers tick in milliseconds (a deadline between
/// ticks fires at the next one), so keeping every simulated time on a tick lets the pump jump
/// exactly to a wake-up.
pub fn whole_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Removes a wake-up when its sleep ends or is dropped (an engine timeout gave up on it).
struct Registered<'a> {
    clock: &'a SimClock,
    key: (Instant, u64),
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.clock.lock().remove(&self.key);
    }
}

/// Advances the clock to each registered wake-up once nothing else can run, until `stop` turns
/// true. `idle` says whether nothing outside the run queue is pending: no database connection
/// checked out, and the runner not woken and waiting to be polled.
pub async fn pump(clock: Arc<SimClock>, idle: impl Fn() -> bool, mut stop: watch::Receiver<bool>) {
    let mut busy_since: Option<std::time::Instant> = None;
    let mut overdue = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        if clock.earliest().is_none() {
            busy_since = None;
            tokio::select! {
                _ = clock.registered.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // Let every task that can run do so first (requeued, the pump goes behind the ready
        // tasks). Timers that fired were processed by the last `advance`.
        for _ in 0..3 {
            requeue().await;
        }
        if !idle() {
            let since = *busy_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() < BUSY_PATIENCE {
                // Waiting for SQLite's thread or the runner: let the runtime poll its drivers
                // (and the runner) meanwhile.
                tokio::task::yield_now().await;
                continue;
            }
            clock.forced.fetch_add(1, Ordering::Relaxed);
        }
        busy_since = None;
        let Some(deadline) = clock.earliest() else { continue };
        let now = Instant::now();
        if deadline > now {
            overdue = 0;
            tokio::time::advance((deadline - now).min(MAX_PUMP_STEP)).await;
        } else if overdue < 100 {
            // The timer is due; its task runs on one of the next turns.
            overdue += 1;
            tokio::task::yield_now().await;
        } else {
            // Not on a tick after all: move to the next one.
            overdue = 0;
            tokio::time::advance(Duration::from_millis(1)).await;
        }
    }
}

/// Puts the calling task at the back of the runtime's run queue, once.
///
/// Unlike `tokio::task::yield_now`, which defers the task until the runtime has polled its I/O
/// and timer drivers (an `epoll_wait` each time: a quarter of a ping sweep's wall time went
/// there), this only reschedules: every task already ready runs before the caller again.
fn requeue() -> impl std::future::Future<Output = ()> {
    let mut requeued = false;
    std::future::poll_fn(move |cx| {
        if requeued {
            std::task::Poll::Ready(())
        } else {
            requeued = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}

/// A future that records whether it has been woken and not polled since ([`WakeFlag`]).
pub struct Tracked<F> {
    inner: Pin<Box<F>>,
    flag: Arc<WakeFlag>,
    /// The flagging waker of the last poll, reused while the caller's waker stays the same.
    waker: Option<(Waker, Waker)>,
}

/// Set when a [`Tracked`] future is woken, cleared when it is polled.
#[derive(Debug, Default)]
pub struct WakeFlag(AtomicBool);

impl WakeFlag {
    /// Whether the future has been woken and is waiting to be polled.
    pub fn pending(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl<F: Future> Tracked<F> {
    /// Wraps `inner`; `flag` follows its wake-ups.
    pub fn new(inner: F, flag: Arc<WakeFlag>) -> Self {
        Self { inner: Box::pin(inner), flag, waker: None }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Cleared before polling, so a wake-up during the poll counts.
        self.flag.0.store(false, Ordering::SeqCst);
        let this = &mut *self;
        let waker = match &this.waker {
            Some((caller, flagging)) if caller.will_wake(cx.waker()) => flagging.clone(),
            _ => {
                let flagging = Waker::from(Arc::new(FlaggingWaker {
                    flag: this.flag.clone(),
                    inner: cx.waker().clone(),
                }));
                this.waker = Some((cx.waker().clone(), flagging.clone()));
                flagging
            }
        };
        this.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// Sets the flag, then wakes the real waker.
struct FlaggingWaker {
    flag: Arc<WakeFlag>,
    inner: Waker,
}

impl Wake for FlaggingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.0.store(true, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

/// Keeps tokio from auto-advancing the paused clock while it is held (a parked blocking task).
#[derive(Debug)]
pub struct ClockHold {
    release: Option<std::sync::mpsc::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ClockHold {
    /// Starts holding. Call inside the run's runtime.
    pub fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let task = tokio::task::spawn_blocking(move || {
            let _ = rx.recv();
        });
        Self { release: Some(tx), task: Some(task) }
    }

    /// Stops holding and waits for the blocking task to end.
    pub async fn release(mut self) {
        self.release.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ClockHold {
    fn drop(&mut self) {
        self.release.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    }

    #[test]
    fn the_pump_moves_time_to_each_wake_up_and_only_then() {
        paused_runtime().block_on(async {
            let hold = ClockHold::start();
            let clock = Arc::new(SimClock::new());
            let (stop_tx, stop_rx) = watch::channel(false);
            let pump_task = tokio::spawn(pump(clock.clone(), || true, stop_rx));
            let a = clock.clone();
            let b = clock.clone();
            let (ta, tb) = tokio::join!(
                async move {
                    a.sleep(Duration::from_millis(250)).await;
                    a.elapsed()
                },
                async move {
                    b.sleep(Duration::from_millis(40)).await;
                    b.sleep(Duration::from_millis(40)).await;
                    b.elapsed()
                }
            );
            assert_eq!(ta, Duration::from_millis(250));
            assert_eq!(tb, Duration::from_millis(80));
            // Nothing sleeps: the clock stays put however long we wait for other things.
            tokio::task::spawn_blocking(|| {
                std::thread::sleep(std::time::Duration::from_millis(20))
            })
            .await
            .expect("blocking task");
            assert_eq!(clock.elapsed(), Duration::from_millis(250));
            clock.advance(Duration::from_secs(60)).await;
            assert_eq!(clock.elapsed(), Duration::from_millis(60_250));
            // A long sleep is reached in steps of at most MAX_PUMP_STEP, so a shorter timeout
            // wrapped around it fires first.
            let timed_out = tokio::time::timeout(
                Duration::from_millis(1500),
                clock.sleep(Duration::from_secs(10)),
            )
            .await
            .is_err();
            assert!(timed_out);
            assert_eq!(clock.forced_advances(), 0);
            let _ = stop_tx.send(true);
            pump_task.await.expect("pump");
            hold.release().await;
        });
    }

    #[test]
    fn tracked_reports_a_wake_up_until_the_next_poll() {
        paused_runtime().block_on(async {
            let flag = Arc::new(WakeFlag::default());
            let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
            let mut tracked = Tracked::new(rx, flag.clone());
            let polled_once = std::future::poll_fn(|cx| {
                assert!(Pin::new(&mut tracked).poll(cx).is_pending());
                Poll::Ready(())
            });
            polled_once.await;
            assert!(!flag.pending(), "not woken yet");
            tx.send(7).expect("send");
            assert!(flag.pending(), "woken, not polled");
            assert_eq!(tracked.await.expect("value"), 7);
            assert!(!flag.pending(), "polled");
        });
    }
}
