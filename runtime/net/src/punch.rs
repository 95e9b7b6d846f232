//! Hole punching, coordinated over a session the two peers already have
//! through a relay.
//!
//! The dialling side A sends `Punch(offer)` with its candidates (see
//! "What is offered" below). B answers with its own and at once starts
//! probing A's (a [`PunchPlan`] that does not dial); A then probes B's and,
//! after [`PunchConfig::dial_after`], dials every one of them. The probes
//! (see [`crate::mux`]) go out of the same UDP socket as QUIC, so each
//! peer's NAT maps them exactly as it maps the session: a NAT whose mapping
//! is endpoint-independent lets the other side's packets in once it has
//! sent some out to them. A probe that arrives from an address B did not
//! offer, at an IP address B did offer (B's NAT gave it another port
//! towards A), is dialled too. The
//! first dial that completes (its TLS handshake proves B's key, as on any
//! path) is the punched connection; if none does within
//! [`PunchConfig::give_up_after`], the punch fails and the relayed session
//! stays.
//!
//! Punching is only for sessions through a relay: an offer on a direct
//! session is refused, and so is a punch over one.
//!
//! **What is offered.** The addresses the observers the node chose (its
//! registries and relays, [`Endpoint::observations`]) saw it at, then, for
//! the side that dialled through a relay, what that relay said it saw
//! ([`Connection::relay_observed`]: the relay is the one the peer's
//! descriptor names, so its word serves this punch and nothing else),
//! then the node's local addresses. The offers travel inside the
//! end-to-end session, so the relay cannot alter them in flight; what the
//! relay can do is lie about the address it sees, which only spoils the
//! punch it carries (it could as well drop the circuit).
//!
//! **What is probed.** Only [`errand_core::reach::punchable`] addresses:
//! never loopback (unless the session itself runs over loopback),
//! multicast, broadcast, unspecified, link-local or 240.0.0.0/4; and a
//! probe from an address that was not offered is taken as a candidate
//! only at an IP address the offer listed (probes are unauthenticated).
//! The side that answers runs one punch per peer and answers a peer's
//! offer at most once per [`OFFER_EVERY`], at most [`MAX_ANSWERED`] punches
//! at once in all, each at most 20 rounds of 40-byte probes to at most 8
//! addresses, and stops as soon as the punched connection arrives. Offers
//! come only through the node's own relays, whose per-peer circuit limits
//! (60 new circuits a minute by default) bound how fast new identities can
//! ask.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use errand_core::PeerId;
use errand_core::reach::{PathKind, PunchConfig, PunchOffer, PunchPlan, PunchStep};
use errand_core::wire::{ErrorCode, Request, Response, WireError};
use tokio::sync::mpsc;

use crate::{Connection, Endpoint, NetError, lock, mux};

/// Punches answered at once, whoever asked (see [`Endpoint::candidates`]
/// for what is offered back).
pub const MAX_ANSWERED: usize = 64;

/// A peer's punch offers are answered at most once per this long.
pub const OFFER_EVERY: Duration = Duration::from_secs(30);

impl Endpoint {
    /// Where we may be reached, for a punch: what the observers we chose
    /// saw, then our own addresses.
    pub fn candidates(&self) -> Vec<SocketAddr> {
        self.own_candidates(None, true)
    }

    /// [`Endpoint::candidates`], with `relay_observed` (what the relay of
    /// the session being punched saw) after the observers' word, cleaned
    /// up for a session over loopback or not.
    fn own_candidates(
        &self,
        relay_observed: Option<SocketAddr>,
        loopback: bool,
    ) -> Vec<SocketAddr> {
        let observations = self.observations();
        let mut v: Vec<SocketAddr> = observations.iter().map(|o| o.seen).collect();
        v.extend(relay_observed);
        v.extend(observations.iter().filter_map(|o| o.local));
        if let Ok(a) = self.local_addr() {
            v.push(mux::canonical(a));
        }
        errand_core::reach::candidates(&v, loopback)
    }

    /// The address of the relay `conn` runs through; `None` for a direct
    /// session (or one whose circuit is gone).
    fn relay_under(&self, conn: &quinn::Connection) -> Option<SocketAddr> {
        let remote = mux::canonical(conn.remote_address());
        if !mux::is_virtual(remote) {
            return None;
        }
        self.shared.mux.relay_of(remote)
    }

    /// Answers `peer`'s offer on `conn`: probe its candidates for a while,
    /// in the background; answer with ours. Only on a relayed session, at
    /// most once per peer per [`OFFER_EVERY`] and [`MAX_ANSWERED`] at once.
    pub(crate) fn answer_punch(
        &self,
        conn: &quinn::Connection,
        peer: PeerId,
        offer: &PunchOffer,
    ) -> Response {
        let Some(relay) = self.relay_under(conn) else {
            return Response::Error(WireError::new(
                ErrorCode::Unsupported,
                "hole punches are answered only on sessions through a relay; this one is direct",
            ));
        };
        // Loopback candidates only when the session runs over loopback.
        let loopback = relay.ip().is_loopback();
        let now = Instant::now();
        let plan = PunchPlan::new(PunchConfig::default(), &offer.addrs, loopback, false, now);
        {
            let mut r = lock(&self.shared.reach);
            r.offers
                .retain(|_, at| now.saturating_duration_since(*at) < OFFER_EVERY);
            if let Some(at) = r.offers.get(&peer) {
                let wait = OFFER_EVERY.saturating_sub(now.saturating_duration_since(*at));
                return Response::Error(WireError::new(
                    ErrorCode::Busy,
                    format!(
                        "one hole punch per peer every {} s; retry in {} s",
                        OFFER_EVERY.as_secs(),
                        wait.as_secs().max(1)
                    ),
                ));
            }
            r.answering.retain(|_, task| !task.is_finished());
            if r.answering.len() >= MAX_ANSWERED {
                return Response::Error(WireError::new(
                    ErrorCode::Busy,
                    format!("{MAX_ANSWERED} hole punches under way; retry later"),
                ));
            }
            r.offers.insert(peer, now);
            r.punched_for
                .retain(|_, at| now.saturating_duration_since(*at) < crate::paths::PUNCHED_WINDOW);
            r.punched_for.insert(peer, now);
            let endpoint = self.clone();
            let task = tokio::spawn(async move {
                let _ = endpoint.run_punch(peer, plan).await;
            });
            r.answering.insert(peer, task.abort_handle());
        }
        tracing::debug!(%peer, "answering a hole punch");
        Response::Punch(PunchOffer::new(&self.own_candidates(None, loopback)))
    }

    /// A punched connection from `peer` arrived: stop probing it.
    pub(crate) fn punch_answered(&self, peer: PeerId) {
        if let Some(task) = lock(&self.shared.reach).answering.remove(&peer) {
            task.abort();
            self.shared.mux.unwatch(peer);
        }
    }

    /// Punches to the peer of `via` (a session with it through a relay)
    /// and returns the direct connection it opened.
    pub async fn punch(&self, via: &Connection) -> Result<Connection, NetError> {
        let peer = via.peer();
        let fail = |reason: String| NetError::PunchFailed { peer, reason };
        let Some(relay) = self.relay_under(&via.conn) else {
            return Err(fail(
                "the session is not through a relay: there is nothing to punch".into(),
            ));
        };
        let loopback = relay.ip().is_loopback();
        lock(&self.shared.reach).punches.attempted += 1;
        let offer = PunchOffer::new(&self.own_candidates(via.relay_observed(), loopback));
        let theirs = match via.request(&Request::Punch(offer)).await? {
            Response::Punch(o) => o,
            Response::Error(e) => return Err(fail(format!("the peer declined: {e}"))),
            _ => return Err(fail("the peer answered out of turn".into())),
        };
        let plan = PunchPlan::new(
            PunchConfig::default(),
            &theirs.addrs,
            loopback,
            true,
            Instant::now(),
        );
        let offered = plan.candidates().len();
        match self.run_punch(peer, plan).await {
            Some(c) => {
                lock(&self.shared.reach).punches.succeeded += 1;
                Ok(c)
            }
            None => Err(fail(format!(
                "no direct path opened to any of {offered} candidates"
            ))),
        }
    }

    /// Runs `plan` until it is done; for the dialling side, returns the
    /// first connection that completed.
    async fn run_punch(&self, peer: PeerId, mut plan: PunchPlan) -> Option<Connection> {
        let (tx, mut probes) = mpsc::unbounded_channel();
        self.shared.mux.watch(peer, tx);
        let me = self.peer_id();
        let mut dials = tokio::task::JoinSet::new();
        let mut won = None;
        loop {
            match plan.poll(std::time::Instant::now()) {
                PunchStep::Done => break,
                PunchStep::Probe(addrs) => {
                    for a in addrs {
                        self.shared.mux.send_probe(me, a);
                    }
                }
                PunchStep::Dial(addrs) => {
                    for a in addrs {
                        let endpoint = self.clone();
                        dials.spawn(async move { endpoint.dial(a, peer, PathKind::Punched).await });
                    }
                }
                PunchStep::Wait(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until.into()) => {}
                        Some(from) = probes.recv() => {
                            if plan.learn(from) {
                                tracing::debug!(%peer, %from, "probe from a new address");
                            }
                        }
                        Some(done) = dials.join_next(), if !dials.is_empty() => {
                            if let Ok(Ok(c)) = done {
                                plan.succeeded();
                                won = Some(c);
                            }
                        }
                    }
                }
            }
        }
        self.shared.mux.unwatch(peer);
        won
    }
}
