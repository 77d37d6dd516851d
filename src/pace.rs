//! How a long-running loop (training, the physics sandbox) waits. On a thread of its own it
//! blocks; in a browser's page, which has one thread, the loop is a task of the page's and every
//! wait hands control back to it (to draw a frame, to deliver the GPU's answer).

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

/// The waits a loop makes. (Its futures need not be `Send`: each loop stays on its thread, or
/// on the page's one thread.)
#[allow(async_fn_in_trait)]
pub trait Pace {
    /// The next message; with `block`, waits until there is one (or the sender is gone).
    async fn receive<T>(&self, messages: &Receiver<T>, block: bool) -> Result<T, TryRecvError>;
    /// Waits `delay`; on a page, zero still lets the page run what it has queued.
    async fn pause(&self, delay: Duration);
}

/// A thread of its own: waiting is blocking.
#[cfg(not(target_arch = "wasm32"))]
pub struct Blocking;

#[cfg(not(target_arch = "wasm32"))]
impl Pace for Blocking {
    async fn receive<T>(&self, messages: &Receiver<T>, block: bool) -> Result<T, TryRecvError> {
        if block {
            messages.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            messages.try_recv()
        }
    }

    async fn pause(&self, delay: Duration) {
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}

/// A task of the page's: waiting is a timer the page's event loop resolves.
#[cfg(target_arch = "wasm32")]
pub struct Yielding;

/// How often a blocked receive looks again.
#[cfg(target_arch = "wasm32")]
const POLL_MS: i32 = 50;

/// Resolves after `ms` milliseconds on a page's or a worker's event loop.
#[cfg(target_arch = "wasm32")]
async fn timer(ms: i32) {
    use wasm_bindgen::JsCast;
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        if ms <= 0 {
            // A message to itself runs as soon as the event loop has served what is queued,
            // without the 4 ms a nested zero timeout is clamped to.
            if let Ok(channel) = web_sys::MessageChannel::new() {
                channel.port1().set_onmessage(Some(&resolve));
                if channel
                    .port2()
                    .post_message(&wasm_bindgen::JsValue::NULL)
                    .is_ok()
                {
                    return;
                }
            }
        }
        // `setTimeout` of whatever global this is (a window, a worker).
        let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        if let Some(set_timeout) = set_timeout {
            let _ = set_timeout.call2(&global, &resolve, &ms.max(0).into());
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

#[cfg(target_arch = "wasm32")]
impl Pace for Yielding {
    async fn receive<T>(&self, messages: &Receiver<T>, block: bool) -> Result<T, TryRecvError> {
        loop {
            match messages.try_recv() {
                Err(TryRecvError::Empty) if block => timer(POLL_MS).await,
                other => return other,
            }
        }
    }

    async fn pause(&self, delay: Duration) {
        timer(delay.as_millis().min(i32::MAX as u128) as i32).await;
    }
}
