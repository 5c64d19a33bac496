//! A tiny given/when/then harness for aggregates: one test per rule, comparing events or
//! error variants (never messages).
//!
//! ```ignore
//! given::<Convention>([signed(), allocated(500_000)])
//!     .when(commit(600_000))
//!     .then_err(ConventionError::EnvelopeExceeded { .. });
//! ```

use crate::aggregate::Aggregate;
use std::fmt::Debug;

pub struct Given<A: Aggregate> {
    state: A,
}

pub struct Then<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

/// The aggregate's history.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let events: Vec<A::Event> = history.into_iter().collect();
    Given { state: A::fold(&events) }
}

impl<A: Aggregate> Given<A> {
    /// The command under test.
    pub fn when(self, command: A::Command) -> Then<A> {
        Then { result: self.state.decide(&command) }
    }
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq + Debug,
    A::Error: PartialEq + Debug,
{
    /// The command is accepted and produces exactly these events.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => assert_eq!(events, expected, "unexpected events"),
            Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
        }
    }

    /// The command is refused with exactly this error (variant and figures).
    #[track_caller]
    pub fn then_err(self, expected: A::Error) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(e) => assert_eq!(e, expected, "unexpected error"),
        }
    }

    /// The accepted events, for assertions the other forms cannot express.
    #[track_caller]
    pub fn events(self) -> Vec<A::Event> {
        match self.result {
            Ok(events) => events,
            Err(e) => panic!("expected events, got error {e:?}"),
        }
    }
}
