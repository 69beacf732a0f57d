#!/usr/bin/env python3
"""An OpenAI-compatible embeddings endpoint (POST /v1/embeddings) over a sentence-transformers
model found on this machine, for `sluice bench retrieval --embedder http` with a semantic
encoder where one is installed (the GPU machine's image has the library; its models must already
be on disk: nothing is downloaded).

Usage:
  st_embedding_server.py --find                 prints the first known encoder on disk, or nothing
  st_embedding_server.py --model PATH --port N  serves it (embeddings L2-normalised)

--find looks in the Hugging Face cache (HF_HOME, ~/.cache/huggingface) and the usual model
folders for a sentence-transformers model (a folder with config_sentence_transformers.json or
modules.json), preferring MiniLM, BGE and E5 families in that order.
"""
import argparse
import glob
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFERRED = ["all-minilm-l6", "all-minilm-l12", "bge-small", "bge-base", "e5-small", "e5-base",
             "gte-small", "multi-qa-minilm", "all-mpnet-base", "msmarco-minilm"]


def candidate_dirs():
    roots = [os.environ.get("HF_HOME", ""), os.path.expanduser("~/.cache/huggingface"),
             os.path.expanduser("~/.cache/torch/sentence_transformers"),
             os.environ.get("SENTENCE_TRANSFORMERS_HOME", ""), "/models", "/data", "/opt/models",
             "/root/models", "/workspace", "/home"]
    found = set()
    for root in filter(None, roots):
        if not os.path.isdir(root):
            continue
        for marker in ("config_sentence_transformers.json", "modules.json"):
            for path in glob.glob(os.path.join(root, "**", marker), recursive=True):
                found.add(os.path.dirname(path))
    return sorted(found)


def rank(path):
    name = path.lower()
    for i, family in enumerate(PREFERRED):
        if family in name:
            return i
    return len(PREFERRED)


def find():
    dirs = candidate_dirs()
    for d in dirs:
        print(f"found: {d}", file=sys.stderr)
    known = [d for d in dirs if rank(d) < len(PREFERRED)]
    if known:
        print(min(known, key=rank))


def model_name(path):
    """The model's name: from a hub cache folder (models--ORG--NAME/snapshots/HASH), else the
    folder's own name."""
    parts = path.rstrip("/").split("/")
    for part in reversed(parts):
        if part.startswith("models--"):
            return part.split("--")[-1]
    return parts[-1]


def serve(model_path, port):
    import torch
    from sentence_transformers import SentenceTransformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(model_path, device=device)
    name = model_name(model_path)
    dim = model.get_sentence_embedding_dimension()
    lock = threading.Lock()  # one encode at a time on the device
    print(f"serving {name} ({dim} dimensions) on {device}, port {port}", flush=True)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
                return self.answer(404, {"error": {"message": f"no route {self.path}"}})
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                texts = request["input"]
                texts = [texts] if isinstance(texts, str) else list(texts)
                if not all(isinstance(t, str) for t in texts):
                    raise ValueError("input must be a string or a list of strings")
            except (ValueError, KeyError, TypeError) as error:
                return self.answer(400, {"error": {"message": str(error)}})
            with lock:
                vectors = model.encode(texts, batch_size=128, normalize_embeddings=True,
                                       convert_to_numpy=True)
            # No "usage": its token counts would be guesses, and Sluice's http embedder reads none.
            return self.answer(200, {
                "object": "list", "model": request.get("model", name),
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                         for i, v in enumerate(vectors)]})

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--find", action="store_true")
    parser.add_argument("--model")
    parser.add_argument("--port", type=int, default=8011)
    args = parser.parse_args()
    if args.find:
        return find()
    if not args.model:
        parser.error("--model or --find")
    serve(args.model, args.port)


if __name__ == "__main__":
    sys.exit(main())
