//! The financial report of a past date, through GraphQL: the log is verified, then
//! replayed with the cutoff, exactly as `tracker replay` does.

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::{bad_input, internal};
use crate::scalars::DateScalar;
use async_graphql::{Context, Enum, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use domain::{ConventionId, EnvelopeId};
use projections::report::{Cutoff, EventRef, FinancialReport, Integrity, ReportBuilder, replay};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "projections::report::Figure")]
pub enum ReportFigure {
    Allocated,
    Committed,
    ServiceDone,
    Paid,
    /// A partner's balance (the envelope is ignored): paid by ANCT to the partner.
    Received,
    /// Spent of ANCT's money, by the partner's statements of expenses.
    Justified,
    /// Ordered back and paid back by the partner.
    Recovered,
    /// The co-funders' own spending.
    CoFunderSpent,
}

/// One event behind a figure.
#[derive(SimpleObject)]
pub struct ReportEvent {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_type: String,
    pub business_date: DateScalar,
    /// RFC 3339, UTC.
    pub recorded_at: String,
    pub actor: String,
    /// `+1250.00`, `-300.00` (a release), `=500000.00` (an amendment setting the amount).
    pub effect: Option<String>,
    pub reference: Option<String>,
}

impl From<EventRef> for ReportEvent {
    fn from(e: EventRef) -> Self {
        ReportEvent {
            position: e.position,
            stream: e.stream,
            version: e.version,
            event_type: e.event_type,
            business_date: e.business_date.into(),
            recorded_at: e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: e.actor,
            effect: e.effect,
            reference: e.reference,
        }
    }
}

fn cutoff(as_of: Option<DateScalar>, as_known_at: Option<String>) -> Result<Cutoff> {
    let as_known_at = as_known_at
        .map(|t| {
            DateTime::parse_from_rfc3339(t.trim()).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                bad_input("asKnownAt", format!("`{t}` is not an instant: expected RFC 3339, e.g. 2022-01-15T12:00:00Z"))
            })
        })
        .transpose()?;
    Ok(Cutoff { as_of: as_of.map(|d| d.0), as_known_at })
}

/// Verifies the log through its chains, then replays what was verified, on the replay
/// lane (see [`crate::heavy`]): if the request's time runs out, the replay stops too.
async fn replayed(state: &AppState, cutoff: Cutoff) -> Result<(ReportBuilder, Integrity)> {
    // One replay at a time in the process; a replay waiting here counts in its request's
    // time. The turn goes with the work, so the next replay starts only once this one has
    // really stopped.
    let turn = state.replays.clone().acquire_owned().await.map_err(|e| internal(&e))?;
    let store = state.store.clone();
    let work = async move {
        let _turn = turn;
        let store = store.as_ref();
        let verification = store::verify_store(store, false).await?;
        let until = if verification.is_intact() { verification.head_position } else { *store.head().borrow() };
        let integrity = Integrity {
            position: verification.head_position,
            digest: verification.head_hash.to_hex(),
            first_break: verification
                .first_break
                .as_ref()
                .map(|b| format!("position {}, stream {}, version {}: {}", b.position, b.stream, b.version, b.reason)),
        };
        Ok::<_, store::StoreError>((replay(store, cutoff, until).await?, integrity))
    };
    state.heavy.run(work).await.map_err(|e| internal(&e))?.map_err(|e| internal(&e))
}

#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// The financial report replayed from the verified log: events of business date up
    /// to `asOf`, recorded by `asKnownAt` (RFC 3339). The same JSON as `tracker replay`:
    /// `header` (cutoff, log position and digest, verification), `conventions` (total,
    /// funders, envelopes, amendments, annex costs, targets), `corrections`.
    #[graphql(complexity = "crate::REPLAY_COST")]
    async fn report(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateScalar>,
        as_known_at: Option<String>,
    ) -> Result<Json<FinancialReport>> {
        require(ctx, Operation::Report)?;
        let cutoff = cutoff(as_of, as_known_at)?;
        let (builder, integrity) = replayed(ctx.data_unchecked::<AppState>(), cutoff).await?;
        Ok(Json(builder.finish(&integrity)))
    }

    /// The events behind one figure of one envelope of the report (provenance), or of
    /// the partner's balance (RECEIVED, JUSTIFIED, RECOVERED, CO_FUNDER_SPENT: the envelope
    /// is then ignored). With `funder` (e.g. "ANCT", "Uniformation"), only that funder's
    /// part: each event's `effect` is then the funder's signed move by the envelope's
    /// financing plan, so the effects add up to the funder's figure in `report`; without
    /// `envelope`, over every envelope of the convention. A partner's received, justified
    /// and recovered money is ANCT's; co-funder spending is its funder's.
    #[graphql(complexity = "crate::REPLAY_COST + child_complexity")]
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn report_provenance(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateScalar>,
        as_known_at: Option<String>,
        convention_code: String,
        envelope: Option<String>,
        figure: ReportFigure,
        funder: Option<String>,
    ) -> Result<Vec<ReportEvent>> {
        require(ctx, Operation::Report)?;
        let cutoff = cutoff(as_of, as_known_at)?;
        let figure: projections::report::Figure = figure.into();
        let envelope = envelope.filter(|e| !e.trim().is_empty());
        let no_envelope = || {
            bad_input(
                "envelope",
                "name the envelope whose figure to explain (or a funder, for its part of the whole convention)",
            )
        };
        // Refused before the replay, which is the costly part.
        if funder.is_none() && envelope.is_none() && !figure.of_partner() {
            return Err(no_envelope());
        }
        let (builder, _) = replayed(ctx.data_unchecked::<AppState>(), cutoff).await?;
        let convention = ConventionId::for_code(&convention_code);
        let envelope = envelope.map(|name| EnvelopeId::for_name(convention, &name));
        let events = match (funder, envelope) {
            (Some(funder), envelope) => {
                let funders = builder.funders_of(convention);
                if !funders.iter().any(|f| f.eq_ignore_ascii_case(&funder)) {
                    return Err(bad_input(
                        "funder",
                        format!(
                            "`{funder}` does not fund {convention_code}: its funders are {}",
                            if funders.is_empty() {
                                "none (no such convention at that date)".into()
                            } else {
                                funders.join(", ")
                            }
                        ),
                    ));
                }
                builder.explain_funder(convention, envelope, figure, &funder)
            }
            (None, _) if figure.of_partner() => builder.explain_partner(convention, figure),
            (None, Some(envelope)) => builder.explain(convention, envelope, figure),
            (None, None) => return Err(no_envelope()),
        };
        Ok(events.into_iter().map(ReportEvent::from).collect())
    }
}
