//! Typed actions.
pub struct Client;
pub struct DeviceFilter;
pub struct Listed;
pub struct TimeFilter;
