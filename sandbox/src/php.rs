//! PHP-style form and query strings (`filter[within][dateFrom]=1&ids[]=2`) as JSON, the way
//! Bitrix24 reads GET parameters, form bodies and `batch` sub-calls. Every leaf is a string;
//! methods read numbers leniently (see [`crate::bitrix24`]).

use serde_json::{Map, Value};

/// Parse `a=1&b[c]=2&d[]=3&d[]=4` into `{"a":"1","b":{"c":"2"},"d":["3","4"]}`.
pub fn parse(query: &str) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (head, path) = split_key(&key);
        if head.is_empty() {
            continue;
        }
        let mut node = &mut root;
        let mut segments = std::iter::once(head).chain(path).peekable();
        while let Some(segment) = segments.next() {
            let last = segments.peek().is_none();
            node = step(node, segment, last, &value);
            if last {
                break;
            }
        }
    }
    root
}

/// `a[b][]` → ("a", ["b", ""]).
fn split_key(key: &str) -> (&str, Vec<&str>) {
    let Some(open) = key.find('[') else {
        return (key, Vec::new());
    };
    let head = &key[..open];
    let mut rest = &key[open..];
    let mut path = Vec::new();
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            break;
        };
        path.push(&stripped[..close]);
        rest = &stripped[close + 1..];
    }
    (head, path)
}

/// Descend into `segment` of `node` (creating it), or store `value` there when `last`.
fn step<'a>(node: &'a mut Value, segment: &str, last: bool, value: &str) -> &'a mut Value {
    let leaf = || Value::String(value.to_owned());
    let fresh = |last: bool| {
        if last {
            leaf()
        } else {
            Value::Object(Map::new())
        }
    };
    if segment.is_empty() {
        if !node.is_array() {
            *node = Value::Array(Vec::new());
        }
        let items = node.as_array_mut().expect("array");
        items.push(fresh(last));
        return items.last_mut().expect("pushed");
    }
    if !node.is_object() {
        // `a[]=1&a[x]=2`: PHP turns the list into a map; keep the later shape.
        let previous = std::mem::take(node);
        let mut map = Map::new();
        if let Value::Array(items) = previous {
            for (i, item) in items.into_iter().enumerate() {
                map.insert(i.to_string(), item);
            }
        }
        *node = Value::Object(map);
    }
    let map = node.as_object_mut().expect("object");
    if last {
        map.insert(segment.to_owned(), leaf());
    }
    map.entry(segment.to_owned())
        .or_insert_with(|| fresh(false))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::parse;

    #[test]
    fn nested_keys_and_lists() {
        assert_eq!(
            parse(
                "resourceId=5&filter%5Bwithin%5D%5BdateFrom%5D=10&filter[within][dateTo]=20&ids[]=1&ids[]=2"
            ),
            json!({"resourceId": "5", "filter": {"within": {"dateFrom": "10", "dateTo": "20"}}, "ids": ["1", "2"]})
        );
    }

    #[test]
    fn event_body() {
        let v = parse("event=ONBOOKINGADD&data[ID]=66&ts=1751285644&auth[application_token]=abc");
        assert_eq!(v["data"]["ID"], "66");
        assert_eq!(v["auth"]["application_token"], "abc");
    }

    #[test]
    fn garbage_is_harmless() {
        assert_eq!(parse("[x]=1&&=&a[b=2"), json!({"a": "2"}));
    }
}
