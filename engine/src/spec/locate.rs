//! Where each value of a YAML document is: a map from JSON pointer to the
//! line and column of the value (and of its key, for mapping entries), built
//! from the parser's events. Schema and semantic errors carry pointers; this
//! turns them into `FILE:LINE:COL`.

use std::collections::BTreeMap;

use serde_saphyr::granit_parser::{Event, Parser};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub col: usize,
}

#[derive(Debug, Default)]
pub struct LocationMap {
    values: BTreeMap<String, Pos>,
    keys: BTreeMap<String, Pos>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

impl LocationMap {
    /// Build the map. A document the parser rejects yields what was seen
    /// before the error (the parse error itself is reported elsewhere).
    pub fn build(text: &str) -> Self {
        let mut map = LocationMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = Pos {
                line: span.start.line(),
                col: span.start.col() + 1,
            };
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map { path, key }) = stack.last_mut()
                        && key.is_none()
                    {
                        let child = format!("{path}/{}", escape(&value));
                        map.keys.insert(child, pos);
                        *key = Some(value.into_owned());
                        continue;
                    }
                    let path = map.child_path(&mut stack);
                    map.values.entry(path).or_insert(pos);
                }
                Event::Alias(_) => {
                    let path = map.child_path(&mut stack);
                    map.values.entry(path).or_insert(pos);
                }
                Event::MappingStart(..) => {
                    let path = map.child_path(&mut stack);
                    map.values.entry(path.clone()).or_insert(pos);
                    stack.push(Frame::Map { path, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = map.child_path(&mut stack);
                    map.values.entry(path.clone()).or_insert(pos);
                    stack.push(Frame::Seq { path, index: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        map
    }

    /// The pointer of the node about to start, advancing the parent frame.
    fn child_path(&self, stack: &mut [Frame]) -> String {
        match stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { path, key }) => {
                let k = key.take().unwrap_or_default();
                format!("{path}/{}", escape(&k))
            }
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}/{index}");
                *index += 1;
                p
            }
        }
    }

    /// Position of the value at `pointer`, or of its nearest located ancestor.
    pub fn value(&self, pointer: &str) -> Pos {
        let mut p = pointer.to_string();
        loop {
            if let Some(pos) = self.values.get(&p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// Position of the key of the entry at `pointer` (falls back to value).
    pub fn key(&self, pointer: &str) -> Pos {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_values_and_keys() {
        let text = "a: 1\nlist:\n  - name: x\n    n: 2\n  - {name: y, n: 3}\n";
        let m = LocationMap::build(text);
        assert_eq!(m.value("/a"), Pos { line: 1, col: 4 });
        assert_eq!(m.key("/list/0/n"), Pos { line: 4, col: 5 });
        assert_eq!(m.value("/list/0/n"), Pos { line: 4, col: 8 });
        assert_eq!(m.value("/list/1/n"), Pos { line: 5, col: 18 });
        // unknown pointer falls back to nearest ancestor
        assert_eq!(m.value("/list/1/zzz"), m.value("/list/1"));
    }
}
