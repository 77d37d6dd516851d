//! A one-slot mailbox between a producer thread (training, the physics sandbox) and a reader
//! (the viewer's frame loop): the writer replaces what is there, the reader takes the newest.
//! Neither ever waits for the other longer than a swap, and nothing piles up.

use std::sync::Mutex;

#[derive(Default)]
pub struct Latest<T>(Mutex<Option<T>>);

impl<T> Latest<T> {
    pub fn put(&self, value: T) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(value);
        }
    }

    pub fn take(&self) -> Option<T> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_gets_the_newest_value_once() {
        let mailbox = Latest::default();
        assert_eq!(mailbox.take(), None::<u32>);
        mailbox.put(1);
        mailbox.put(2);
        assert_eq!(mailbox.take(), Some(2));
        assert_eq!(mailbox.take(), None);
    }
}
