//! The shapes a `getDeviceTimeline` reply can take. The API document
//! lists the fields as `event.created`, `event.status` and so on, but
//! its only sample is one event under the key `prtsafe_inspection`.
//! So a client must accept several shapes, and the simulator can send
//! each of them.

use serde_json::{Map, Value};

/// The member name of the document's timeline sample.
pub(crate) const SAMPLE_KEY: &str = "prtsafe_inspection";

/// The shape of `getDeviceTimeline` replies. Events are in `created`
/// order in every shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TimelineShape {
    /// An object with one member per event: `{"event_1": {..}, ..}`.
    /// The document's sample event keeps its key `prtsafe_inspection`.
    #[default]
    Object,
    /// An array of events: `[{..}, ..]`.
    Array,
    /// The object shape under `event`: `{"event": {"event_1": {..}}}`.
    WrappedEvent,
    /// The array shape under `events`: `{"events": [{..}, ..]}`.
    WrappedEvents,
    /// The object shape under `timeline`: `{"timeline": {"event_1": {..}}}`.
    WrappedTimeline,
    /// The document's sample shape: one event under `prtsafe_inspection`,
    /// or the object shape under that key when there are several, or
    /// `{}` when there are none.
    Sample,
    /// Each of the shapes above in turn, one per reply, in the order
    /// they are listed here.
    Rotate,
    /// A bare JSON string that contains no event, which a client must not
    /// understand: `"2 timeline events"`. Not part of the rotation.
    Unknown,
}

impl TimelineShape {
    /// The shapes [`TimelineShape::Rotate`] cycles through, in order.
    pub const ROTATION: [TimelineShape; 6] = [
        TimelineShape::Object,
        TimelineShape::Array,
        TimelineShape::WrappedEvent,
        TimelineShape::WrappedEvents,
        TimelineShape::WrappedTimeline,
        TimelineShape::Sample,
    ];
}

/// Builds the reply body for `events` (member name and event, oldest
/// first) in `shape`. `Rotate` is resolved by the caller and is sent
/// as the object shape here.
pub(crate) fn render(shape: TimelineShape, events: Vec<(String, Value)>) -> Value {
    match shape {
        TimelineShape::Object | TimelineShape::Rotate => object(events),
        TimelineShape::Array => array(events),
        TimelineShape::WrappedEvent => wrap("event", object(events)),
        TimelineShape::WrappedEvents => wrap("events", array(events)),
        TimelineShape::WrappedTimeline => wrap("timeline", object(events)),
        TimelineShape::Sample => sample(events),
        TimelineShape::Unknown => Value::String(format!("{} timeline events", events.len())),
    }
}

fn object(events: Vec<(String, Value)>) -> Value {
    Value::Object(events.into_iter().collect())
}

fn array(events: Vec<(String, Value)>) -> Value {
    Value::Array(events.into_iter().map(|(_, event)| event).collect())
}

fn wrap(key: &str, inner: Value) -> Value {
    let mut outer = Map::new();
    outer.insert(key.to_owned(), inner);
    Value::Object(outer)
}

fn sample(mut events: Vec<(String, Value)>) -> Value {
    match events.len() {
        0 => Value::Object(Map::new()),
        1 => match events.pop() {
            Some((_, event)) => wrap(SAMPLE_KEY, event),
            None => Value::Object(Map::new()),
        },
        _ => wrap(SAMPLE_KEY, object(events)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn two_events() -> Vec<(String, Value)> {
        vec![
            ("event_1".to_owned(), json!({ "n": 1 })),
            ("event_2".to_owned(), json!({ "n": 2 })),
        ]
    }

    #[test]
    fn shapes_render_as_documented() {
        let object = json!({ "event_1": { "n": 1 }, "event_2": { "n": 2 } });
        let array = json!([{ "n": 1 }, { "n": 2 }]);
        let cases = [
            (TimelineShape::Object, object.clone()),
            (TimelineShape::Array, array.clone()),
            (TimelineShape::WrappedEvent, json!({ "event": object })),
            (TimelineShape::WrappedEvents, json!({ "events": array })),
            (
                TimelineShape::WrappedTimeline,
                json!({ "timeline": object }),
            ),
            (TimelineShape::Sample, json!({ SAMPLE_KEY: object })),
            (TimelineShape::Unknown, json!("2 timeline events")),
        ];
        for (shape, expected) in cases {
            assert_eq!(render(shape, two_events()), expected, "{shape:?}");
        }
    }

    #[test]
    fn sample_shape_holds_single_event_bare() {
        let one = vec![("event_1".to_owned(), json!({ "n": 1 }))];
        let body = render(TimelineShape::Sample, one);
        assert_eq!(body, json!({ SAMPLE_KEY: { "n": 1 } }));
        assert_eq!(render(TimelineShape::Sample, Vec::new()), json!({}));
    }

    #[test]
    fn empty_timeline_keeps_each_shape() {
        assert_eq!(render(TimelineShape::Object, Vec::new()), json!({}));
        assert_eq!(render(TimelineShape::Array, Vec::new()), json!([]));
        let wrapped = render(TimelineShape::WrappedEvents, Vec::new());
        assert_eq!(wrapped, json!({ "events": [] }));
    }
}
