//! Fault injection, a testing and benchmarking aid: delay or fail a fraction of the data calls
//! (Search, Fetch, TermStats). Set by `scatter leaf --fault-delay-ms --fault-delay-rate
//! --fault-error-rate` and changed at run time with the `SetFaults` admin call. Health probes
//! (`Info`, gRPC health) are not affected, so a slow leaf still looks alive, as in real life.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use scatter_core::random::SharedRng;
use scatter_proto::v1::FaultSettings;

/// The current fault settings, shared by every call.
#[derive(Debug, Default)]
pub struct Faults {
    delay_ms: AtomicU64,
    /// Fractions stored as parts per billion.
    delay_ppb: AtomicU64,
    error_ppb: AtomicU64,
    rng: SharedRng,
}

/// What to do to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    None,
    /// Sleep this long first.
    Delay(Duration),
    /// Fail with UNAVAILABLE.
    Error,
}

const BILLION: f64 = 1e9;

fn ppb(rate: f64) -> u64 {
    (rate.clamp(0.0, 1.0) * BILLION) as u64
}

impl Faults {
    /// Faults with these settings.
    pub fn new(delay_ms: u64, delay_rate: f64, error_rate: f64) -> Self {
        let f = Faults::default();
        f.set(&FaultSettings {
            set: true,
            delay_ms,
            delay_rate,
            error_rate,
        });
        f
    }

    /// Applies `s` (when `s.set`) and returns the settings now in force.
    pub fn set(&self, s: &FaultSettings) -> FaultSettings {
        if s.set {
            self.delay_ms.store(s.delay_ms, Ordering::Relaxed);
            self.delay_ppb.store(ppb(s.delay_rate), Ordering::Relaxed);
            self.error_ppb.store(ppb(s.error_rate), Ordering::Relaxed);
        }
        FaultSettings {
            set: false,
            delay_ms: self.delay_ms.load(Ordering::Relaxed),
            delay_rate: self.delay_ppb.load(Ordering::Relaxed) as f64 / BILLION,
            error_rate: self.error_ppb.load(Ordering::Relaxed) as f64 / BILLION,
        }
    }

    /// Draws the fault for one call.
    pub fn draw(&self) -> Fault {
        let (error, delay) = (
            self.error_ppb.load(Ordering::Relaxed),
            self.delay_ppb.load(Ordering::Relaxed),
        );
        if error == 0 && delay == 0 {
            return Fault::None;
        }
        if self.uniform_ppb() < error {
            return Fault::Error;
        }
        if self.uniform_ppb() < delay {
            return Fault::Delay(Duration::from_millis(self.delay_ms.load(Ordering::Relaxed)));
        }
        Fault::None
    }

    /// A uniform draw in [0, 1e9).
    fn uniform_ppb(&self) -> u64 {
        self.rng.next_u64() % 1_000_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_respected() {
        let f = Faults::new(7, 0.25, 0.1);
        let draws: Vec<Fault> = (0..20_000).map(|_| f.draw()).collect();
        let errors = draws.iter().filter(|d| **d == Fault::Error).count();
        let delays = draws
            .iter()
            .filter(|d| matches!(d, Fault::Delay(_)))
            .count();
        assert!((1_700..2_300).contains(&errors), "{errors}");
        // Delays are drawn among the calls that did not fail: 0.25 * 0.9.
        assert!((4_100..4_900).contains(&delays), "{delays}");
        assert_eq!(Faults::default().draw(), Fault::None);
        assert_eq!(f.set(&FaultSettings::default()).delay_ms, 7);
    }
}
