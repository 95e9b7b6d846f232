//! The requester side: finding capabilities across registries and invoking
//! them, checking everything a requester can check.
//!
//! [`Client::find`] asks every registry at once, verifies each candidate's
//! signature and freshness and re-checks the query's constraints (a
//! registry is trusted for recall only), and merges the answers.
//! [`Client::invoke`] dials the executor by its key, sends the request, and
//! checks that the receipt binds the executor dialled, our nonce, the
//! component the descriptor promised, the input sent and the output
//! received.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use errand_core::descriptor::SignedDescriptor;
use errand_core::discovery::merge;
use errand_core::receipt::{BindingError, Expected};
use errand_core::wire::{
    InvokeRequest, InvokeResponse, Query, Request, Response, StatusReport, Target, WireError,
};
use errand_core::{PeerId, SecretKey, UnixMillis};
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

    /// The first advertised address of a descriptor.
    pub fn address_of(d: &SignedDescriptor) -> Result<PeerAddr, ClientError> {
        let b = d.body();
        match b.addrs.first() {
            Some(errand_core::descriptor::NetAddr::Quic(a)) => Ok(PeerAddr {
                peer: b.publisher,
                addr: *a,
            }),
            None => Err(ClientError::NoAddress(b.publisher)),
        }
    }

    /// Sends `req` to `to` and checks the receipt. `component` is the digest
    /// the descriptor promised, if any.
    pub async fn invoke(
        &self,
        to: PeerAddr,
        component: Option<errand_core::Digest>,
        req: InvokeRequest,
    ) -> Result<Invoked, ClientError> {
        let (done, binding) = self.invoke_raw(to, component, req).await?;
        binding.map_err(|error| ClientError::Receipt {
            peer: to.peer,
            error,
        })?;
        Ok(done)
    }

    /// Sends `req` to `to` and returns the response together with the
    /// verdict on its receipt, without acting on the verdict: for callers
    /// whose policy decides whether a bad receipt matters.
    pub async fn invoke_raw(
        &self,
        to: PeerAddr,
        component: Option<errand_core::Digest>,
        req: InvokeRequest,
    ) -> Result<(Invoked, Result<(), BindingError>), ClientError> {
        let t0 = Instant::now();
        let input = req.input.clone();
        let request_id = req.request_id;
        let component = component.or(match &req.target {
            Target::Component { digest, .. } => Some(*digest),
            Target::Capability { .. } => None,
        });
        let wire = Request::Invoke(Box::new(req));
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
        let binding = response.receipt.check_binding(&Expected {
            executor: to.peer,
            requester: self.peer_id(),
            request_id,
            component,
            input: &input,
            output: &response.output,
        });
        let bytes = sent + encoded_len(&Response::Invoked(Box::new(response.clone())));
        Ok((
            Invoked {
                response,
                elapsed: t0.elapsed(),
                bytes,
            },
            binding,
        ))
    }

    /// Action shipping: runs `component` on `to`. Sends only its digest
    /// first; uploads the bytes only if the executor asks for them.
    pub async fn ship(
        &self,
        to: PeerAddr,
        component: &[u8],
        mut req: InvokeRequest,
    ) -> Result<Invoked, ClientError> {
        let digest = errand_core::Digest::of(component);
        req.target = Target::Component {
            digest,
            bytes: None,
        };
        match self.invoke(to, Some(digest), req.clone()).await {
            Err(ClientError::Remote { error, .. })
                if error.code == errand_core::wire::ErrorCode::NeedComponent =>
            {
                let bytes = errand_core::bounded::BBytes::new(component.to_vec()).map_err(|e| {
                    ClientError::Remote {
                        peer: to.peer,
                        error: WireError::new(errand_core::wire::ErrorCode::TooLarge, e),
                    }
                })?;
                req.target = Target::Component {
                    digest,
                    bytes: Some(bytes),
                };
                self.invoke(to, Some(digest), req).await
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
