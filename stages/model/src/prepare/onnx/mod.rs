//! ONNX export of a prepared model, for the ONNX Runtime backend
//! (`measure::ort`), and graph statistics of ONNX models.
//!
//! The export is written here, in Rust, from the same safetensors
//! checkpoint candle loads (through the same [`SafetensorsSource`] name
//! mapping), rather than by `torch.onnx` or `optimum`: assay needs no
//! Python, and the graph computes exactly what candle's llama and GPT-2
//! compute, so the two backends can be checked against each other.
//!
//! # Interface
//!
//! | name | type | shape |
//! | --- | --- | --- |
//! | input `input_ids` | int64 | `[batch, seq]` |
//! | input `past_key.{i}`, `past_value.{i}` | f32 | `[batch, n_kv_head, past_seq, head_dim]` |
//! | output `logits` | f32 | `[batch, vocab]` (last position only, like candle) |
//! | output `present_key.{i}`, `present_value.{i}` | f32 | `[batch, n_kv_head, past_seq+seq, head_dim]` |
//!
//! The KV cache is graph input and output (the layout of Hugging Face's
//! `optimum` exports), so ONNX Runtime needs no state: each call appends
//! the new keys and values to the past and returns the whole cache, which
//! the caller feeds back. Positions (rotary angles for llama, the learned
//! position rows for GPT-2) and the causal mask are computed in the graph
//! from the past length, so the runtime passes nothing but ids and past;
//! prefill passes a past of length 0.
//!
//! Weights are initializers, f32, little-endian `raw_data`. The bytes are
//! a function of the architecture and the weights only (no timestamps, no
//! assay version, no map iteration order): the same checkpoint always
//! exports to the same bytes, so the export can be stored by digest.

mod decoder;
pub mod graph;
pub mod proto;

use std::collections::BTreeMap;

use candle_core::DType;
use prost::Message;

use crate::decl::ModelInfo;
use crate::weights::SafetensorsSource;
use graph::{Dim, GraphBuilder, value_info};
use proto::{ModelProto, OperatorSetIdProto, data_type};

/// ONNX opset of the export (17: the newest whose `ReduceMean` and `Split`
/// take the forms every ONNX Runtime fusion still matches).
pub const OPSET: i64 = 17;
/// ONNX IR version of the export (the one opset 17 shipped with).
pub const IR_VERSION: i64 = 8;
pub const PRODUCER: &str = "assay";
/// Version of the export's graph layout, written as `producer_version`.
/// Bumped when the graph changes, never with assay's own version, so a new
/// assay release does not change the bytes of an unchanged export.
pub const EXPORT_FORMAT: &str = "1";

pub const INPUT_IDS: &str = "input_ids";
pub const LOGITS: &str = "logits";

pub fn past_key(layer: u32) -> String {
    format!("past_key.{layer}")
}
pub fn past_value(layer: u32) -> String {
    format!("past_value.{layer}")
}
pub fn present_key(layer: u32) -> String {
    format!("present_key.{layer}")
}
pub fn present_value(layer: u32) -> String {
    format!("present_value.{layer}")
}

/// Serialized protobuf messages cannot exceed 2 GiB; bigger models would
/// need ONNX external data, which this export does not write.
const PROTOBUF_LIMIT: usize = i32::MAX as usize;

/// The model as an ONNX graph (see the module docs for the interface), from
/// a safetensors checkpoint in the Hugging Face layout (one or more shards).
pub fn export_onnx(info: &ModelInfo, shards: &[&[u8]]) -> Result<Vec<u8>, String> {
    info.check_shape()?;
    let src = SafetensorsSource::new(info.arch, DType::F32, shards)
        .map_err(|e| format!("parsing safetensors: {}", crate::weights::error_text(&e)))?;
    let mut g = GraphBuilder::new();
    decoder::build(&mut g, info, &src)?;

    let batch = || Dim::named("batch");
    let kv_heads = Dim::Fixed(i64::from(info.n_kv_head));
    let head_dim = Dim::Fixed(i64::from(info.head_dim()));
    let cache = |seq: &str| vec![batch(), kv_heads.clone(), Dim::named(seq), head_dim.clone()];
    let mut inputs = vec![value_info(
        INPUT_IDS,
        data_type::INT64,
        &[batch(), Dim::named("seq")],
    )];
    let mut outputs = vec![value_info(
        LOGITS,
        data_type::FLOAT,
        &[batch(), Dim::Fixed(i64::from(info.vocab))],
    )];
    for i in 0..info.n_layer {
        inputs.push(value_info(
            &past_key(i),
            data_type::FLOAT,
            &cache("past_seq"),
        ));
        inputs.push(value_info(
            &past_value(i),
            data_type::FLOAT,
            &cache("past_seq"),
        ));
        outputs.push(value_info(
            &present_key(i),
            data_type::FLOAT,
            &cache("past_seq+seq"),
        ));
        outputs.push(value_info(
            &present_value(i),
            data_type::FLOAT,
            &cache("past_seq+seq"),
        ));
    }
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: PRODUCER.into(),
        producer_version: EXPORT_FORMAT.into(),
        domain: String::new(),
        model_version: 0,
        doc_string: String::new(),
        graph: Some(g.finish(info.arch.name(), inputs, outputs)),
        metadata_props: Vec::new(),
    };
    let len = model.encoded_len();
    if len > PROTOBUF_LIMIT {
        return Err(format!(
            "the ONNX export of {} would be {len} bytes, over protobuf's 2 GiB limit (external data is not supported)",
            info.name
        ));
    }
    Ok(model.encode_to_vec())
}

/// Node count and nodes per operator type of a serialized ONNX model,
/// subgraphs (`If`, `Loop` bodies) included. Operators outside the default
/// domain are qualified by it (`com.microsoft.SkipLayerNormalization`), so
/// a fusion into a contrib operator is visible as such. Used on the export
/// and on the model ONNX Runtime writes after optimisation, as evidence of
/// what the optimiser changed.
pub fn graph_stats(model: &[u8]) -> Result<(u64, BTreeMap<String, u64>), String> {
    let model =
        ModelProto::decode(model).map_err(|e| format!("not an ONNX model (protobuf: {e})"))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| "ONNX model has no graph".to_string())?;
    let mut ops = BTreeMap::new();
    let mut total = 0;
    count_nodes(graph, &mut total, &mut ops);
    Ok((total, ops))
}

fn count_nodes(graph: &proto::GraphProto, total: &mut u64, ops: &mut BTreeMap<String, u64>) {
    for node in &graph.node {
        *total += 1;
        let key = match node.domain.as_str() {
            "" | "ai.onnx" => node.op_type.clone(),
            domain => format!("{domain}.{}", node.op_type),
        };
        *ops.entry(key).or_default() += 1;
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(&attr.graphs) {
                count_nodes(sub, total, ops);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use super::proto::{GraphProto, NodeProto, tensor_shape_proto::dimension, type_proto};
    use super::*;
    use crate::decl::{Arch, SyntheticArch};

    use crate::prepare::synthetic::tiny;

    fn export(a: &SyntheticArch) -> Vec<u8> {
        let st = crate::prepare::synthetic::safetensors(a).unwrap();
        export_onnx(&a.info("tiny"), &[&st]).unwrap()
    }

    #[test]
    fn same_checkpoint_same_bytes_other_weights_other_bytes() {
        for arch in [Arch::Llama, Arch::Gpt2] {
            let a = tiny(arch);
            let x = export(&a);
            assert_eq!(x, export(&a), "{arch:?}");
            let other = SyntheticArch { seed: 8, ..a };
            assert_ne!(x, export(&other), "{arch:?}");
        }
    }

    fn dims(v: &proto::ValueInfoProto) -> (i32, Vec<String>) {
        let Some(type_proto::Value::TensorType(t)) =
            v.r#type.as_ref().and_then(|t| t.value.clone())
        else {
            panic!("{} is not a tensor", v.name)
        };
        let dims = t
            .shape
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value.as_ref().unwrap() {
                dimension::Value::DimValue(v) => v.to_string(),
                dimension::Value::DimParam(p) => p.clone(),
            })
            .collect();
        (t.elem_type, dims)
    }

    #[test]
    fn interface_names_and_shapes() {
        for arch in [Arch::Llama, Arch::Gpt2] {
            let a = tiny(arch);
            let model = ModelProto::decode(export(&a).as_slice()).unwrap();
            assert_eq!(model.ir_version, 8);
            assert_eq!(model.producer_name, "assay");
            assert_eq!(model.opset_import.len(), 1);
            assert_eq!(
                (
                    model.opset_import[0].domain.as_str(),
                    model.opset_import[0].version
                ),
                ("", 17)
            );
            let g = model.graph.unwrap();
            let f = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            let ins: Vec<_> = g.input.iter().map(|v| (v.name.clone(), dims(v))).collect();
            let outs: Vec<_> = g.output.iter().map(|v| (v.name.clone(), dims(v))).collect();
            let past = (1, f(&["batch", "2", "past_seq", "16"]));
            let present = (1, f(&["batch", "2", "past_seq+seq", "16"]));
            assert_eq!(
                ins,
                vec![
                    ("input_ids".into(), (7, f(&["batch", "seq"]))),
                    ("past_key.0".into(), past.clone()),
                    ("past_value.0".into(), past.clone()),
                    ("past_key.1".into(), past.clone()),
                    ("past_value.1".into(), past.clone()),
                ],
                "{arch:?}"
            );
            assert_eq!(
                outs,
                vec![
                    ("logits".into(), (1, f(&["batch", "300"]))),
                    ("present_key.0".into(), present.clone()),
                    ("present_value.0".into(), present.clone()),
                    ("present_key.1".into(), present.clone()),
                    ("present_value.1".into(), present.clone()),
                ],
                "{arch:?}"
            );

            // Well formed: every node reads only graph inputs, initializers
            // or earlier nodes' outputs (topological order), every name is
            // produced once, every output is produced, and nothing outside
            // the default domain is used.
            let mut known: BTreeSet<String> = g.input.iter().map(|v| v.name.clone()).collect();
            for t in &g.initializer {
                assert!(known.insert(t.name.clone()), "duplicate {}", t.name);
                assert_eq!(t.data_location, 0);
                let n: i64 = t.dims.iter().product();
                let width = if t.data_type == 7 { 8 } else { 4 };
                assert_eq!(t.raw_data.len() as i64, n * width, "{}", t.name);
            }
            for node in &g.node {
                assert_eq!(node.domain, "", "{}", node.name);
                for i in &node.input {
                    assert!(known.contains(i), "{} reads undefined {i}", node.name);
                }
                for o in &node.output {
                    assert!(known.insert(o.clone()), "{o} produced twice");
                }
            }
            for o in &g.output {
                assert!(known.contains(&o.name), "output {} not produced", o.name);
            }
            // The weights are all there: the checkpoint's values, once each
            // (the tied head reuses the token embeddings).
            let weights: u64 = g
                .initializer
                .iter()
                .filter(|t| {
                    t.name.ends_with(".weight")
                        || t.name.ends_with(".bias")
                        || t.name.ends_with(".weight.T")
                })
                .map(|t| t.dims.iter().product::<i64>() as u64)
                .sum();
            assert_eq!(weights, a.parameter_count(), "{arch:?}");
        }
    }

    #[test]
    fn graph_stats_counts_nodes_per_domain_qualified_op() {
        let node = |op: &str, domain: &str| NodeProto {
            op_type: op.into(),
            domain: domain.into(),
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                node: vec![
                    node("Add", ""),
                    node("MatMul", ""),
                    node("Add", "ai.onnx"),
                    node("SkipLayerNormalization", "com.microsoft"),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let (n, ops) = graph_stats(&model.encode_to_vec()).unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            ops.into_iter().collect::<Vec<_>>(),
            vec![
                ("Add".to_string(), 2),
                ("MatMul".to_string(), 1),
                ("com.microsoft.SkipLayerNormalization".to_string(), 1),
            ]
        );
        assert!(graph_stats(b"\xff\xff not protobuf").is_err());
        assert!(graph_stats(&ModelProto::default().encode_to_vec()).is_err());
    }

    #[test]
    fn export_graph_stats_match_the_architecture() {
        let (n, ops) = graph_stats(&export(&tiny(Arch::Llama))).unwrap();
        assert_eq!(ops.values().sum::<u64>(), n);
        // Seven projections per layer plus none for the head (a Gemm).
        assert_eq!(ops["MatMul"], 2 * (7 + 2));
        assert_eq!(ops["Softmax"], 2);
        assert_eq!(ops["Gemm"], 1);
        // Two RMSNorms per layer and the final one.
        assert_eq!(ops["ReduceMean"], 2 * 2 + 1);
        let (_, ops) = graph_stats(&export(&tiny(Arch::Gpt2))).unwrap();
        assert_eq!(ops["Tanh"], 2);
        assert_eq!(ops["ReduceMean"], 2 * (2 * 2 + 1));
    }
}
