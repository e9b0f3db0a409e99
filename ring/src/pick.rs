//! The pick a request gets: the balancer's choice with the soft rules on
//! top of the caller's hard exclusions (endpoints tried, unresolved).
use crate::balancer::{Algorithm, Balancer, Pick, PickContext};
use crate::exclude::Exclude;
use crate::fade::{fade_draw, FadeIn};

/// How one pick treats endpoints beyond the caller's hard exclusions: passive
/// health (ejected endpoints avoided) and fade-in, both given up when they
/// would leave no candidate, fade-in first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Soft {
    /// The caller's monotonic clock in milliseconds.
    pub now_ms: u64,
    /// Avoid endpoints the passive health check ejected.
    pub health: bool,
    pub fade_in: Option<FadeIn>,
}

/// The pick for a request: the balancer's choice among endpoints `exclude`
/// leaves, avoiding ejected endpoints (when `soft.health`) and respecting
/// fade-in. The soft rules are dropped, fade-in first, when they leave nothing.
pub fn pick(
    balancer: &dyn Balancer,
    ctx: &PickContext,
    exclude: &dyn Exclude,
    soft: Soft,
) -> Option<Pick> {
    let endpoints = balancer.endpoints();
    let now = soft.now_ms;
    let ejected = |i: usize| soft.health && endpoints[i].health().is_ejected(now);
    let admitted = |i: usize| exclude.excludes(i) || ejected(i);
    if let Some(fade) = soft.fade_in {
        let draw = match balancer.algorithm() {
            Algorithm::ConsistentHash => fade_draw(ctx.key_hash),
            _ => fade_draw(ctx.random),
        };
        let welcome =
            |i: usize| admitted(i) || fade.declines(draw, endpoints[i].ready_since_ms(), now);
        if let Some(pick) = balancer.pick(ctx, &welcome) {
            return Some(pick);
        }
    }
    if soft.health {
        if let Some(pick) = balancer.pick(ctx, &admitted) {
            return Some(pick);
        }
    }
    balancer.pick(ctx, exclude)
}
