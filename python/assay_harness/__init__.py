"""assay's Python harness: measures one cell of assay's `python` backend kind
(Hugging Face transformers eager, or under torch.compile) and reports phases,
greedy tokens and what actually ran over a JSON-lines protocol on
stdin/stdout. The protocol is documented in docs/python-harness.md; assay
embeds this package in its binary and sets PYTHONPATH to a copy of it.
"""

# The protocol this harness speaks; assay refuses any other.
PROTOCOL = 1
VERSION = "0.1.0"
