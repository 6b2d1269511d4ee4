//! Optional integers that also accept JSON's integral floats (`36.0`, `1e3`). JSON has one
//! number type: JSON Schema's `integer` (and so the OpenAPI document) counts `36.0` as an
//! integer, and clients built on floats (JavaScript, Python's `json` of a float) send it.
//! A fraction, or a number out of the field's range, is still refused.

use serde::{Deserialize, Deserializer};

/// `Option<T>` from an integral JSON number, or null.
pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole: Option<i128> = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e38)
                .map(|f| f as i128)
        });
    let whole = whole.ok_or_else(|| {
        serde::de::Error::custom(format!("invalid value: {n}, expected an integer"))
    })?;
    T::try_from(whole)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("invalid value: {n} is out of range")))
}
