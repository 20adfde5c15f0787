//! The HTTP layer: everything a client touches before a query or a write starts.

pub mod auth;
pub mod bulk_body;
pub mod connections;
pub mod front_door;
pub mod http;
pub mod memory;
pub mod openapi;
pub mod shaping;
pub mod tls;
pub mod ui;
pub mod validate;
