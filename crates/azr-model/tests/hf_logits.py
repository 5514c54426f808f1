"""Reads a request (JSON on stdin), loads a checkpoint with transformers (and, given an adapter
folder, its LoRA adapters with PEFT), prints the token ids of `text` and the logits of `ids`."""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

req = json.load(sys.stdin)
model = AutoModelForCausalLM.from_pretrained(req["model"], dtype=torch.float32)
if req.get("adapter"):
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, req["adapter"])
model.eval()
tokenizer = AutoTokenizer.from_pretrained(req["tokenizer"])
text_ids = tokenizer(req["text"], add_special_tokens=False)["input_ids"]
with torch.no_grad():
    logits = model(torch.tensor([req["ids"]])).logits[0]
json.dump({"text_ids": text_ids, "logits": logits.tolist()}, sys.stdout)
