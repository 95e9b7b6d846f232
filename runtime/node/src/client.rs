//! The requester side: finding capabilities across registries and invoking
//! them, checking everything a requester can check.
//!
//! [`Client::find`] asks every registry at once, verifies each candidate's
//! signature and freshness and re-checks the query's constraints (a
//! registry is trusted for recall only), and merges the answers.
//! [`Client::invoke`] addresses and signs an [`Ask`] (the signed request
//! names the executor, the target, the input's digest, parameters, time,
//! fuel cap, limits, nonce and seed), dials the executor by its key, sends
//! it, and checks that the receipt answers exactly that request and the
//! output received.
//!
//! An executor at one of its limits (connections from this key, frame
//! memory, invocation slots) refuses new work before acting on it; such a
//! failure is [`ClientError::is_retryable`], and [`retry`] retries it with
//! backoff.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use errand_core::bounded::BBytes;
use errand_core::descriptor::SignedDescriptor;
use errand_core::discovery::merge;
use errand_core::evidence::MAX_BLOB_BYTES;
use errand_core::receipt::{BindingError, Expected, InvocationContext, RequestId, RunLimits};
use errand_core::request::{CapabilityTarget, Seed, SignedRequest};
use errand_core::signed::EncodeError;
use errand_core::wire::{
    ErrorCode, InvokeRequest, InvokeResponse, Query, Request, Response, StatusReport, WireError,
};
use errand_core::{Digest, PeerId, SecretKey, UnixMillis};
use errand_net::{Endpoint, NetConfig, NetError};

use crate::config::PeerAddr;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The remote answered with an error.
    #[error("{peer} refused: {error}")]
    Remote {
        /// Who.
        peer: PeerId,
        /// What it said.
        error: WireError,
    },
    /// The remote answered with something else than asked for.
    #[error("{peer} answered with an unexpected message")]
    Unexpected {
        /// Who.
        peer: PeerId,
    },
    /// The receipt does not bind the invocation.
    #[error("invalid receipt from {peer}: {error}")]
    Receipt {
        /// Who.
        peer: PeerId,
        /// What is wrong.
        error: BindingError,
    },
    /// No registry is configured.
    #[error(
        "no registries given: pass --registry PEERID@ADDR, set ERRAND_REGISTRIES, or --config node.toml"
    )]
    NoRegistries,
    /// Every registry failed.
    #[error("no registry answered: {0}")]
    AllRegistriesFailed(String),
    /// The descriptor gives no address to dial.
    #[error("{0} advertises no address")]
    NoAddress(PeerId),
    /// The request could not be signed (a field over its bounds).
    #[error("cannot sign the request: {0}")]
    Request(#[from] EncodeError),
}

impl ClientError {
    /// Whether the call may be sent again as it is: the remote refused it
    /// at a limit before acting on it (a refused connection, no stream or
    /// frame memory free, all invocation slots busy).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Net(e) => e.is_retryable(),
            ClientError::Remote { error, .. } => error.code == ErrorCode::Busy,
            _ => false,
        }
    }
}

/// How [`retry`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Most attempts, the first included.
    pub attempts: u32,
    /// The wait after the first attempt; it doubles after each.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            attempts: 6,
            first: Duration::from_millis(200),
            max: Duration::from_secs(3),
        }
    }
}

/// Runs `call` until it succeeds, fails in a way that is not
/// [`ClientError::is_retryable`], or `backoff.attempts` are spent. Waits
/// between attempts grow exponentially, each drawn at random between half
/// and all of its step (so parallel callers spread out); `before_retry` is
/// told each retryable failure and the wait that follows.
pub async fn retry<T, F, Fut>(
    backoff: Backoff,
    mut call: F,
    mut before_retry: impl FnMut(&ClientError, Duration),
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut step = backoff.first;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt < backoff.attempts => {
                let jitter =
                    f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
                let wait = step.mul_f64(0.5 + 0.5 * jitter);
                before_retry(&e, wait);
                tokio::time::sleep(wait).await;
                step = (step * 2).min(backoff.max);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Fuel asked for when the requester states none: this node's default cap.
pub const DEFAULT_FUEL: u64 = 5_000_000_000;

/// What to ask an executor: a request before [`Client::invoke`] addresses
/// it to one executor and signs it. The same `Ask` sent to two executors is
/// the same work (same nonce, parameters and seed): a cross-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The single-use nonce.
    pub request_id: RequestId,
    /// The capability, or `None` to ship `component`.
    pub capability: Option<CapabilityTarget>,
    /// The component digest to pin (required to ship one).
    pub component: Option<Digest>,
    /// The input.
    pub input: BBytes<MAX_BLOB_BYTES>,
    /// Declared time and parameters.
    pub context: InvocationContext,
    /// The most fuel the run may use.
    pub fuel: u64,
    /// The limits the run must have, if stated.
    pub limits: Option<RunLimits>,
    /// The seed of the guest's randomness.
    pub seed: Seed,
    /// Whether to ask for the full trace.
    pub want_trace: bool,
}

impl Ask {
    /// A fresh nonce and seed from the OS generator: executors must not be
    /// able to predict or link them.
    pub fn fresh_ids() -> (RequestId, Seed) {
        let mut b = [0u8; 48];
        if getrandom::fill(&mut b).is_err() {
            // No OS randomness: time and a process-wide counter, still
            // unique per process.
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let d = Digest::of_parts(&[&crate::node::now().0.to_le_bytes(), &n.to_le_bytes()]);
            b[..32].copy_from_slice(&d.0);
            b[32..].copy_from_slice(&d.0[..16]);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[32..]);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&b[..32]);
        (RequestId(id), Seed(seed))
    }
}

/// The answer to [`Client::find`].
#[derive(Debug, Clone)]
pub struct Found {
    /// Verified candidates, best first, deduplicated across registries.
    pub candidates: Vec<SignedDescriptor>,
    /// Registries that failed, and why.
    pub failures: Vec<(PeerAddr, String)>,
    /// Candidates dropped for a bad signature, staleness or constraints.
    pub rejected: usize,
    /// Time from asking to having all answers.
    pub elapsed: Duration,
    /// Messages sent and bytes exchanged (requests and responses).
    pub messages: u64,
    /// Bytes sent and received, frame payloads.
    pub bytes: u64,
}

/// An invocation's verified result.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// The signed request sent.
    pub request: SignedRequest,
    /// The executor's response; its receipt has been checked.
    pub response: InvokeResponse,
    /// Round-trip time.
    pub elapsed: Duration,
    /// Bytes of the request and the response.
    pub bytes: u64,
}

/// A requester (see the module docs). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    endpoint: Endpoint,
    key: SecretKey,
}

fn encoded_len<T: errand_core::signed::Object>(v: &T) -> u64 {
    errand_core::signed::encode(v)
        .map(|b| b.len() as u64 + 4)
        .unwrap_or(0)
}

impl Client {
    /// A client with its own ephemeral UDP socket.
    pub fn new(key: SecretKey) -> Result<Client, ClientError> {
        Client::bind(
            key,
            SocketAddr::from(([0, 0, 0, 0], 0)),
            NetConfig::default(),
        )
    }

    /// A client bound to `addr`.
    pub fn bind(
        key: SecretKey,
        addr: SocketAddr,
        config: NetConfig,
    ) -> Result<Client, ClientError> {
        Ok(Client {
            endpoint: Endpoint::bind(addr, key.clone(), config)?,
            key,
        })
    }

    /// Our identity.
    pub fn peer_id(&self) -> PeerId {
        self.key.peer_id()
    }

    /// The underlying endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one request and returns the raw response.
    pub async fn request(&self, to: PeerAddr, req: &Request) -> Result<Response, ClientError> {
        Ok(self.endpoint.request(to.addr, to.peer, req).await?)
    }

    /// Asks every registry for `query` (see the module docs).
    pub async fn find(
        &self,
        registries: &[PeerAddr],
        query: &Query,
        now: UnixMillis,
    ) -> Result<Found, ClientError> {
        if registries.is_empty() {
            return Err(ClientError::NoRegistries);
        }
        let t0 = Instant::now();
        let req = Request::Query(query.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for (i, r) in registries.iter().enumerate() {
            let (c, req, r) = (self.clone(), req.clone(), *r);
            tasks.spawn(async move { (i, r, c.request(r, &req).await) });
        }
        let mut answers: Vec<(usize, Vec<SignedDescriptor>)> = Vec::new();
        let mut failures = Vec::new();
        let mut rejected = 0;
        let mut bytes = 0u64;
        let mut messages = 0u64;
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, r, res)) = joined else { continue };
            messages += 2;
            bytes += encoded_len(&req);
            match res {
                Ok(Response::Candidates(list)) => {
                    bytes += encoded_len(&Response::Candidates(list.clone()));
                    let mut ok = Vec::new();
                    for d in list.into_vec() {
                        let b = d.body();
                        if d.verify().is_ok() && b.check_fresh(now).is_ok() && query.admits(b) {
                            // Its signed paths, to dial the publisher by
                            // peer id (see `errand_net::paths`).
                            self.endpoint.learn_paths(b.publisher, &b.addrs);
                            ok.push(d);
                        } else {
                            rejected += 1;
                        }
                    }
                    answers.push((i, ok));
                }
                Ok(Response::Error(e)) => failures.push((r, e.to_string())),
                Ok(_) => failures.push((r, "unexpected answer".into())),
                Err(e) => failures.push((r, e.to_string())),
            }
        }
        if answers.is_empty() {
            let why = failures
                .iter()
                .map(|(r, e)| format!("{r}: {e}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ClientError::AllRegistriesFailed(why));
        }
        answers.sort_by_key(|(i, _)| *i);
        let mut candidates = merge(answers.into_iter().map(|(_, a)| a).collect());
        candidates.truncate(usize::from(query.limit.max(1)));
        Ok(Found {
            candidates,
            failures,
            rejected,
            elapsed: t0.elapsed(),
            messages,
            bytes,
        })
    }

    /// The publisher of a descriptor and the address of its first path: its
    /// first direct address, or else its first relay's. A client that found
    /// the descriptor ([`Client::find`]) dials the publisher on every path
    /// it published, whatever this address.
    pub fn address_of(d: &SignedDescriptor) -> Result<PeerAddr, ClientError> {
        let b = d.body();
        let first = errand_core::reach::order_paths(&b.addrs);
        match first.first() {
            Some(p) => Ok(PeerAddr {
                peer: b.publisher,
                addr: p.socket_addr(),
            }),
            None => Err(ClientError::NoAddress(b.publisher)),
        }
    }

    /// Addresses `ask` to `to` and signs it as this client.
    pub fn sign(&self, to: PeerId, ask: &Ask) -> Result<SignedRequest, ClientError> {
        let request = errand_core::request::Request {
            requester: self.peer_id(),
            executor: to,
            request_id: ask.request_id,
            capability: ask.capability.clone(),
            component: ask.component,
            input: Digest::of(&ask.input),
            context: ask.context.clone(),
            fuel: ask.fuel,
            limits: ask.limits,
            seed: ask.seed,
        };
        Ok(SignedRequest::sign(request, &self.key)?)
    }

    /// Sends `ask` to `to` and checks that the receipt answers it.
    pub async fn invoke(&self, to: PeerAddr, ask: &Ask) -> Result<Invoked, ClientError> {
        let (done, binding) = self.invoke_raw(to, ask).await?;
        binding.map_err(|error| ClientError::Receipt {
            peer: to.peer,
            error,
        })?;
        Ok(done)
    }

    /// Sends `ask` to `to` and returns the response together with the
    /// verdict on its receipt, without acting on the verdict: for callers
    /// whose policy decides whether a bad receipt matters.
    pub async fn invoke_raw(
        &self,
        to: PeerAddr,
        ask: &Ask,
    ) -> Result<(Invoked, Result<(), BindingError>), ClientError> {
        self.send(to, ask, None).await
    }

    async fn send(
        &self,
        to: PeerAddr,
        ask: &Ask,
        component: Option<BBytes<MAX_BLOB_BYTES>>,
    ) -> Result<(Invoked, Result<(), BindingError>), ClientError> {
        let t0 = Instant::now();
        let request = self.sign(to.peer, ask)?;
        let wire = Request::Invoke(Box::new(InvokeRequest {
            request: request.clone(),
            input: ask.input.clone(),
            component,
            want_trace: ask.want_trace,
        }));
        let sent = encoded_len(&wire);
        let resp = self.request(to, &wire).await?;
        let response = match resp {
            Response::Invoked(r) => *r,
            Response::Error(error) => {
                return Err(ClientError::Remote {
                    peer: to.peer,
                    error,
                });
            }
            _ => return Err(ClientError::Unexpected { peer: to.peer }),
        };
        // The request is the one this client just signed: its own
        // signature needs no second check.
        let binding = response.receipt.check_answer(&Expected {
            request: &request,
            output: &response.output,
        });
        let bytes = sent + encoded_len(&Response::Invoked(Box::new(response.clone())));
        Ok((
            Invoked {
                request,
                response,
                elapsed: t0.elapsed(),
                bytes,
            },
            binding,
        ))
    }

    /// Action shipping, one message: sends `ask` (which must pin the
    /// component's digest and name no capability) with the component's
    /// bytes, or without them to ask whether `to` already holds it.
    pub async fn invoke_shipped(
        &self,
        to: PeerAddr,
        ask: &Ask,
        component: Option<BBytes<MAX_BLOB_BYTES>>,
    ) -> Result<Invoked, ClientError> {
        let (done, binding) = self.send(to, ask, component).await?;
        binding.map_err(|error| ClientError::Receipt {
            peer: to.peer,
            error,
        })?;
        Ok(done)
    }

    /// Action shipping: runs `component` on `to`. Sends only its digest
    /// first; uploads the bytes only if the executor asks for them.
    pub async fn ship(
        &self,
        to: PeerAddr,
        component: &[u8],
        ask: &Ask,
    ) -> Result<Invoked, ClientError> {
        let ask = Ask {
            capability: None,
            component: Some(Digest::of(component)),
            ..ask.clone()
        };
        let checked = |r: Result<(Invoked, Result<(), BindingError>), ClientError>| {
            let (done, binding) = r?;
            binding.map_err(|error| ClientError::Receipt {
                peer: to.peer,
                error,
            })?;
            Ok(done)
        };
        match checked(self.send(to, &ask, None).await) {
            Err(ClientError::Remote { error, .. })
                if error.code == errand_core::wire::ErrorCode::NeedComponent =>
            {
                let bytes = BBytes::new(component.to_vec()).map_err(|e| ClientError::Remote {
                    peer: to.peer,
                    error: WireError::new(errand_core::wire::ErrorCode::TooLarge, e),
                })?;
                checked(self.send(to, &ask, Some(bytes)).await)
            }
            other => other,
        }
    }

    /// Closes every connection gracefully, so peers free their slots at
    /// once rather than when the connections idle out.
    pub async fn close(&self) {
        self.endpoint.close();
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }

    /// Fetches the tool package with package digest `digest` from `from`,
    /// and checks that it is that package and that its author and template
    /// signatures verify. (The caller checks the author it expects.)
    pub async fn fetch_package(
        &self,
        from: PeerAddr,
        digest: errand_core::Digest,
    ) -> Result<Option<errand_core::package::Package>, ClientError> {
        match self.request(from, &Request::FetchPackage(digest)).await? {
            Response::Package(Some(p)) if p.digest() == digest && p.verify().is_ok() => {
                Ok(Some(*p))
            }
            Response::Package(_) => Ok(None),
            Response::Error(error) => Err(ClientError::Remote {
                peer: from.peer,
                error,
            }),
            _ => Err(ClientError::Unexpected { peer: from.peer }),
        }
    }

    /// A node's reachability (only its own key may ask).
    pub async fn reachability(
        &self,
        to: PeerAddr,
    ) -> Result<errand_core::reach::ReachabilityReport, ClientError> {
        match self.request(to, &Request::Reachability).await? {
            Response::Reachability(r) => Ok(*r),
            Response::Error(error) => Err(ClientError::Remote {
                peer: to.peer,
                error,
            }),
            _ => Err(ClientError::Unexpected { peer: to.peer }),
        }
    }

    /// A node's status (only its own key may ask).
    pub async fn status(&self, to: PeerAddr) -> Result<StatusReport, ClientError> {
        match self.request(to, &Request::Status).await? {
            Response::Status(s) => Ok(*s),
            Response::Error(error) => Err(ClientError::Remote {
                peer: to.peer,
                error,
            }),
            _ => Err(ClientError::Unexpected { peer: to.peer }),
        }
    }
}
