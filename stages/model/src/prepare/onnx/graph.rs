//! A small builder for ONNX graphs: nodes in the order they are added,
//! weights and constants as initializers, every name derived from a
//! counter and the current scope. Nothing here depends on a hash map's
//! iteration order or on the clock, so the same sequence of calls always
//! gives the same graph (and, encoded, the same bytes).

use std::collections::BTreeMap;

use super::proto::{
    AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_type, data_type, tensor_shape_proto, type_proto,
};

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    Fixed(i64),
    /// A symbolic size the runtime binds per call (`batch`, `past_seq`).
    Named(String),
}

impl Dim {
    pub fn named(name: &str) -> Dim {
        Dim::Named(name.to_string())
    }
}

/// A graph input or output: name, element type, shape.
pub fn value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                Dim::Named(s) => tensor_shape_proto::dimension::Value::DimParam(s.clone()),
            }),
            denotation: String::new(),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: attribute_type::INT,
        i,
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: attribute_type::INTS,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// A tensor with its values as little-endian `raw_data`.
pub fn tensor(name: &str, elem_type: i32, dims: &[i64], raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: elem_type,
        name: name.to_string(),
        raw_data,
        ..Default::default()
    }
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Constants by (type, dims, bytes): a value used by every layer is one
    /// initializer, as an exporter's constant folding would leave it.
    constants: BTreeMap<(i32, Vec<i64>, Vec<u8>), String>,
    counter: usize,
    scope: String,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Prefix of the names of the nodes added next (`blk.3/attn`): only for
    /// readability of the graph in a viewer.
    pub fn set_scope(&mut self, scope: &str) {
        self.scope = scope.to_string();
    }

    fn node_name(&mut self, op: &str) -> String {
        self.counter += 1;
        if self.scope.is_empty() {
            format!("{op}_{}", self.counter)
        } else {
            format!("{}/{op}_{}", self.scope, self.counter)
        }
    }

    /// Add a node with one output; returns the output's name.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.op_n(op, inputs, 1, attrs).remove(0)
    }

    /// Add a node with `outputs` outputs; returns their names.
    pub fn op_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: usize,
        attrs: Vec<AttributeProto>,
    ) -> Vec<String> {
        let name = self.node_name(op);
        let outs: Vec<String> = if outputs == 1 {
            vec![name.clone()]
        } else {
            (0..outputs).map(|k| format!("{name}:{k}")).collect()
        };
        let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        self.push(op, &name, inputs, &refs, attrs);
        outs
    }

    /// Add a node whose output has a given name (a graph output).
    pub fn op_into(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) {
        let name = self.node_name(op);
        self.push(op, &name, inputs, &[output], attrs);
    }

    fn push(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: name.to_string(),
            op_type: op.to_string(),
            domain: String::new(),
            attribute: attrs,
            doc_string: String::new(),
        });
    }

    /// A named f32 initializer (a weight).
    pub fn weight(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        self.initializers
            .push(tensor(name, data_type::FLOAT, dims, f32_bytes(values)));
        name.to_string()
    }

    fn constant(&mut self, elem_type: i32, dims: &[i64], raw: Vec<u8>) -> String {
        let key = (elem_type, dims.to_vec(), raw);
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let name = format!("const_{}", self.constants.len());
        self.initializers
            .push(tensor(&name, elem_type, &key.1, key.2.clone()));
        self.constants.insert(key, name.clone());
        name
    }

    /// A constant int64 vector (shapes, axes).
    pub fn ints(&mut self, values: &[i64]) -> String {
        self.constant(data_type::INT64, &[values.len() as i64], i64_bytes(values))
    }

    /// A constant int64 scalar (0-d).
    pub fn int(&mut self, value: i64) -> String {
        self.constant(data_type::INT64, &[], i64_bytes(&[value]))
    }

    /// A constant f32 scalar (0-d).
    pub fn float(&mut self, value: f32) -> String {
        self.constant(data_type::FLOAT, &[], f32_bytes(&[value]))
    }

    /// A constant f32 vector.
    pub fn floats(&mut self, values: &[f32]) -> String {
        self.constant(data_type::FLOAT, &[values.len() as i64], f32_bytes(values))
    }

    pub fn finish(
        self,
        name: &str,
        inputs: Vec<ValueInfoProto>,
        outputs: Vec<ValueInfoProto>,
    ) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.to_string(),
            initializer: self.initializers,
            doc_string: String::new(),
            input: inputs,
            output: outputs,
            value_info: Vec::new(),
        }
    }
}
