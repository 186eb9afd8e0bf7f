//! Schema formats Kubernetes knows. schemars writes a format for each Rust
//! type (`uint32` for `u32`, `uint64`, `uint16`, `ip` for `IpAddr`, …), and an
//! API server warns about every format it does not recognize when the CRDs are
//! applied (`unrecognized format "uint64"`). Integers keep their range as
//! `minimum`/`maximum` under `int32` or `int64`; other unknown formats are
//! dropped.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool, JSONSchemaPropsOrStringArray,
};

/// Formats an API server recognizes: the integer and number formats of
/// OpenAPI, and the string formats of k8s.io/apiextensions-apiserver's
/// `pkg/apiserver/validation/formats.go` (`date-time` is its `datetime`).
pub(crate) const KNOWN: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "datetime",
    "password",
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "duration",
];

/// The values a schemars integer format allows: (lowest, highest), None
/// where the bound is that of `int64` or beyond it.
fn integer_range(format: &str) -> Option<(Option<f64>, Option<f64>)> {
    Some(match format {
        "int8" => (Some(i8::MIN.into()), Some(i8::MAX.into())),
        "int16" => (Some(i16::MIN.into()), Some(i16::MAX.into())),
        "int" | "int128" => (None, None),
        "uint8" => (Some(0.0), Some(u8::MAX.into())),
        "uint16" => (Some(0.0), Some(u16::MAX.into())),
        "uint32" => (Some(0.0), Some(u32::MAX.into())),
        "uint64" | "uint" | "uint128" => (Some(0.0), None),
        _ => return None,
    })
}

/// The tighter of a bound already in the schema and the type's own.
fn tighter(given: Option<f64>, natural: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (given, natural) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// Rewrites the format of `schema` and of every schema inside it.
pub(crate) fn kubernetes_formats(schema: &mut JSONSchemaProps) {
    fix_format(schema);
    let each = |list: &mut Option<Vec<JSONSchemaProps>>| {
        list.iter_mut().flatten().for_each(kubernetes_formats);
    };
    each(&mut schema.all_of);
    each(&mut schema.any_of);
    each(&mut schema.one_of);
    for map in [
        &mut schema.properties,
        &mut schema.pattern_properties,
        &mut schema.definitions,
    ] {
        map.iter_mut()
            .flat_map(|m| m.values_mut())
            .for_each(kubernetes_formats);
    }
    if let Some(not) = &mut schema.not {
        kubernetes_formats(not);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => kubernetes_formats(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => list.iter_mut().for_each(kubernetes_formats),
        None => {}
    }
    for extra in [
        &mut schema.additional_properties,
        &mut schema.additional_items,
    ] {
        if let Some(JSONSchemaPropsOrBool::Schema(s)) = extra {
            kubernetes_formats(s);
        }
    }
    for dep in schema.dependencies.iter_mut().flat_map(|m| m.values_mut()) {
        if let JSONSchemaPropsOrStringArray::Schema(s) = dep {
            kubernetes_formats(s);
        }
    }
}

fn fix_format(schema: &mut JSONSchemaProps) {
    let Some(format) = schema.format.as_deref() else {
        return;
    };
    if KNOWN.contains(&format) {
        return;
    }
    if schema.type_.as_deref() == Some("integer")
        && let Some((lo, hi)) = integer_range(format)
    {
        let lo = tighter(schema.minimum, lo, f64::max);
        let hi = tighter(schema.maximum, hi, f64::min);
        let fits_int32 = lo.is_some_and(|l| l >= f64::from(i32::MIN))
            && hi.is_some_and(|h| h <= f64::from(i32::MAX));
        schema.format = Some(if fits_int32 { "int32" } else { "int64" }.into());
        // int32 and int64 say their own bounds.
        let implied = |b: Option<f64>, limit: f64| b.filter(|v| *v != limit);
        let (min, max) = if fits_int32 {
            (implied(lo, i32::MIN.into()), implied(hi, i32::MAX.into()))
        } else {
            (lo, hi)
        };
        schema.minimum = min;
        schema.maximum = max;
    } else {
        schema.format = None;
    }
}
