//! Capability drift: a capability disappears without a word (its
//! descriptor lingers until the TTL, and the same kind appears on another
//! peer), degrades or recovers, or changes version and says so.

use errand_core::trust::Entropy;

use super::peers::Cap;
use super::{Ev, World};

impl World {
    pub(super) fn drift_delay(&mut self) -> u64 {
        self.now + self.exp_us(1e3 / self.p.drift_rate)
    }

    /// Sets the drift timer of a capability that just came (back) into
    /// service.
    pub(super) fn schedule_drift(&mut self, p: usize, c: usize) {
        let epoch = self.peers[p].caps[c].epoch;
        let (peer, cap) = (p as u32, c as u16);
        if self.p.drift_rate > 0.0 {
            let t = self.drift_delay();
            self.at(t, Ev::Drift { peer, cap, epoch });
        }
    }

    pub(super) fn drift(&mut self, p: usize, c: usize) {
        if !self.peers[p].caps[c].alive {
            return;
        }
        let roll = self.rng.unit();
        if roll < 0.5 {
            // Disappears without a word: its descriptor lingers until the
            // TTL. The same kind of capability appears on another peer.
            self.peers[p].caps[c].alive = false;
            self.peers[p].caps[c].epoch += 1;
            let kind = self.peers[p].caps[c].kind;
            for _ in 0..8 {
                let q = self.honest[self.rng.below(self.honest.len())] as usize;
                if self.peers[q].stopped {
                    continue;
                }
                match self.peers[q].caps.iter().position(|x| x.kind == kind) {
                    Some(i) if self.peers[q].caps[i].alive => continue,
                    Some(i) => {
                        let x = &mut self.peers[q].caps[i];
                        x.alive = true;
                        x.slow = false;
                        x.version += 1;
                        x.epoch += 1;
                        self.republish(q);
                        self.schedule_drift(q, i);
                    }
                    None => {
                        let public = self.rng.unit() < self.p.public_fraction;
                        let speed = (0.5 + 1.5 * self.rng.unit()) as f32;
                        self.peers[q].caps.push(Cap {
                            kind,
                            version: 1,
                            seq: 0,
                            alive: true,
                            slow: false,
                            public,
                            speed,
                            epoch: 0,
                        });
                        let i = self.peers[q].caps.len() - 1;
                        self.republish(q);
                        self.schedule_drift(q, i);
                    }
                }
                break;
            }
            return;
        }
        if roll < 0.8 {
            // Degrades (4x slower) or recovers, and says so at once.
            self.peers[p].caps[c].slow = !self.peers[p].caps[c].slow;
        } else {
            self.peers[p].caps[c].version += 1;
        }
        self.republish(p);
        let epoch = self.peers[p].caps[c].epoch;
        let t = self.drift_delay();
        self.at(
            t,
            Ev::Drift {
                peer: p as u32,
                cap: c as u16,
                epoch,
            },
        );
    }
}
