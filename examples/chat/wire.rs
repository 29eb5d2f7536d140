//! The chat's JSON messages: between WebSocket clients and gateways, and
//! between gateways and nodes (HTTP bodies, one JSON document each; a
//! subscription streams one [`Event`] per line).

use serde::{Deserialize, Serialize};

/// The longest message text a gateway accepts, in bytes.
pub const MAX_TEXT: usize = 2_000;
/// The largest WebSocket frame a gateway reads; a larger one closes that
/// client's connection with code 1009 and a reason.
pub const MAX_FRAME: usize = 8 * 1024;
/// The longest room name, user name and post id, in bytes.
pub const MAX_NAME: usize = 64;

/// One chat message as the room's owner numbered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The room.
    pub room: String,
    /// The room's sequence number: 1, 2, 3... with no gap.
    pub seq: u64,
    /// The id the posting client gave it (its retries repeat it).
    pub id: String,
    /// Who posted it.
    pub user: String,
    /// What they said.
    pub text: String,
}

/// A post, as a gateway sends it to the room's owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// The client's id for this post: a repeated id is acknowledged again
    /// without a second copy.
    pub id: String,
    /// Who posts.
    pub user: String,
    /// What they say.
    pub text: String,
    /// The nodes the gateway has given up on (so the owner picks its replica
    /// among the others).
    #[serde(default)]
    pub down: Vec<String>,
}

/// A node's answer to an acknowledged post.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ack {
    /// The message's sequence number.
    pub seq: u64,
    /// The nodes this node knows to be down.
    #[serde(default)]
    pub down: Vec<String>,
}

/// Owner to replica: messages to keep, under the owner's epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replicate {
    /// The owner's epoch for the room; a node that has seen a higher one
    /// refuses (the fence).
    pub epoch: u64,
    /// The owner.
    pub from: String,
    /// The messages, in sequence order.
    pub messages: Vec<Message>,
}

/// Why a node did not do what it was asked (a 409, 421 or 503 body).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refusal {
    /// What went wrong, for people.
    pub reason: String,
    /// The kind, for programs.
    pub kind: RefusalKind,
    /// The room's epoch as this node knows it.
    #[serde(default)]
    pub epoch: u64,
    /// The nodes this node knows to be down.
    #[serde(default)]
    pub down: Vec<String>,
}

/// The kinds of [`Refusal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// 409: a successor has taken the room over; this node no longer
    /// acknowledges for it.
    Fenced,
    /// 421: this node does not own the room.
    NotOwner,
    /// 503: the room's replica did not answer; try again.
    NoReplica,
    /// 503: the node is stopping.
    Stopping,
    /// 400: the request is malformed.
    BadRequest,
}

/// A node's whole retained history of a room.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// The messages, in sequence order.
    pub messages: Vec<Message>,
}

/// One line of a subscription stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A committed message.
    Message(Message),
    /// The node no longer serves the room: subscribe again elsewhere.
    Moved,
}

/// What a WebSocket client sends (one JSON text frame each).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Join a room under a name: the gateway answers with the room's history
    /// ([`ServerFrame::Joined`]), then every new message.
    Join {
        /// The room.
        room: String,
        /// The user's name in it.
        user: String,
    },
    /// Post to a room this client has joined.
    Post {
        /// The room.
        room: String,
        /// The client's id for the post; resend the same id to retry.
        id: String,
        /// The text.
        text: String,
    },
    /// Ask for a room's history again ([`ServerFrame::History`]).
    History {
        /// The room.
        room: String,
    },
}

/// What a gateway sends to a WebSocket client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The room's history at the time of the join; live messages follow,
    /// from the next sequence number on.
    Joined {
        /// The room.
        room: String,
        /// Its retained history.
        messages: Vec<Message>,
    },
    /// A new message in a joined room.
    Message(Message),
    /// A post was acknowledged: it is stored on two nodes.
    Ack {
        /// The room.
        room: String,
        /// The post's id.
        id: String,
        /// Its sequence number.
        seq: u64,
    },
    /// A room's history, as asked.
    History {
        /// The room.
        room: String,
        /// Its retained history.
        messages: Vec<Message>,
    },
    /// A request failed; the connection stays open.
    Error {
        /// The post's id, when a post failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Why.
        reason: String,
    },
}

/// Checks a room name, user name or post id: 1 to [`MAX_NAME`] bytes of
/// letters, digits, `-`, `_` or `.`.
pub fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(format!("{what} must be 1 to {MAX_NAME} bytes long"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{what} may hold only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// Checks a message text: 1 to [`MAX_TEXT`] bytes.
pub fn check_text(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(format!("text must be 1 to {MAX_TEXT} bytes long"));
    }
    Ok(())
}
