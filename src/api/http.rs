//! HTTP transport.
pub struct HttpSettings;
pub struct HttpTransport;
