//! Today's date, injected so that deadline tests need no waiting.

use chrono::NaiveDate;
use std::sync::Mutex;

pub trait Clock: Send + Sync {
    fn today(&self) -> NaiveDate;
}

/// The machine's date (UTC).
pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> NaiveDate {
        chrono::Utc::now().date_naive()
    }
}

/// A clock tests set by hand.
pub struct ManualClock(Mutex<NaiveDate>);

impl ManualClock {
    pub fn new(today: NaiveDate) -> Self {
        Self(Mutex::new(today))
    }

    pub fn set(&self, today: NaiveDate) {
        *self.0.lock().expect("clock poisoned") = today;
    }
}

impl Clock for ManualClock {
    fn today(&self) -> NaiveDate {
        *self.0.lock().expect("clock poisoned")
    }
}
