//! The running server: composition of storage, scraping and the HTTP
//! surface, and its lifecycle (reload, ordered shutdown).

pub mod http;
