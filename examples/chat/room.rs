//! One room's state on one node: a bounded history numbered without gaps,
//! deduplication by post id, and the epoch that fences a takeover.

use std::collections::{HashMap, VecDeque};

use crate::wire::{Message, Post};

/// How many messages a room keeps by default (history and the dedupe window).
pub const DEFAULT_CAPACITY: usize = 1_000;

/// One room's history: the last `capacity` messages, numbered 1, 2, 3...
///
/// A post id is remembered as long as its message is in the history, so a
/// client's retry is recognised within the last `capacity` messages of its
/// room; an older retry would make a second copy.
#[derive(Debug)]
pub struct Room {
    capacity: usize,
    history: VecDeque<Message>,
    last_seq: u64,
    ids: HashMap<String, u64>,
}

impl Room {
    /// An empty room that keeps `capacity` messages (at least one).
    pub fn new(capacity: usize) -> Room {
        Room {
            capacity: capacity.max(1),
            history: VecDeque::new(),
            last_seq: 0,
            ids: HashMap::new(),
        }
    }

    /// The sequence number of the newest message (0 when there is none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The sequence number of the message with this post id, if the history
    /// holds it.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        self.ids.get(id).copied()
    }

    /// The message `post` would become: the next sequence number. Nothing is
    /// stored until [`append`](Room::append).
    pub fn next(&self, room: &str, post: &Post) -> Message {
        Message {
            room: room.to_string(),
            seq: self.last_seq + 1,
            id: post.id.clone(),
            user: post.user.clone(),
            text: post.text.clone(),
        }
    }

    /// Stores a message newer than the newest one; returns whether it was
    /// new (an older or repeated sequence number changes nothing).
    pub fn append(&mut self, message: Message) -> bool {
        if message.seq <= self.last_seq {
            return false;
        }
        self.last_seq = message.seq;
        self.ids.insert(message.id.clone(), message.seq);
        self.history.push_back(message);
        while self.history.len() > self.capacity {
            if let Some(old) = self.history.pop_front() {
                if self.ids.get(&old.id) == Some(&old.seq) {
                    self.ids.remove(&old.id);
                }
            }
        }
        true
    }

    /// The retained messages after sequence number `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Vec<Message> {
        let skip = self.history.partition_point(|m| m.seq <= seq);
        self.history.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(id: &str) -> Post {
        Post {
            id: id.into(),
            user: "ann".into(),
            text: "hi".into(),
            down: vec![],
        }
    }

    #[test]
    fn numbers_without_gaps_and_keeps_the_newest() {
        let mut room = Room::new(2);
        for id in ["a", "b", "c"] {
            let m = room.next("r", &post(id));
            assert!(room.append(m));
        }
        assert_eq!(room.last_seq(), 3);
        let seqs: Vec<u64> = room.after(0).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [2, 3]);
        assert_eq!(room.seq_of("a"), None, "evicted ids are forgotten");
        assert_eq!(room.seq_of("c"), Some(3));
        assert!(
            !room.append(room.after(2)[0].clone()),
            "a repeat is ignored"
        );
    }
}
