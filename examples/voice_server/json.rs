//! Bus message fields as JSON, for the browser.

use serde_json::{Map, Value};

/// Every field of `s` that JSON can carry: strings, numbers, booleans, clock times (ns), and
/// lists and structures of them (a final's words).
pub fn structure(s: &gst::StructureRef) -> Value {
    let mut fields = Map::new();
    for (name, value) in s.iter() {
        if let Some(v) = value_of(value) {
            fields.insert(name.to_string(), v);
        }
    }
    Value::Object(fields)
}

fn value_of(v: &gst::glib::SendValue) -> Option<Value> {
    if let Ok(s) = v.get::<String>() {
        return Some(Value::from(s));
    }
    if let Ok(b) = v.get::<bool>() {
        return Some(Value::from(b));
    }
    if let Ok(n) = v.get::<u64>() {
        return Some(Value::from(n));
    }
    if let Ok(n) = v.get::<u32>() {
        return Some(Value::from(n));
    }
    if let Ok(n) = v.get::<i32>() {
        return Some(Value::from(n));
    }
    if let Ok(n) = v.get::<f64>() {
        return Some(Value::from(n));
    }
    if let Ok(t) = v.get::<gst::ClockTime>() {
        return Some(Value::from(t.nseconds()));
    }
    if let Ok(s) = v.get::<gst::Structure>() {
        return Some(structure(&s));
    }
    if let Ok(list) = v.get::<gst::List>() {
        return Some(Value::Array(list.iter().filter_map(value_of).collect()));
    }
    None
}
