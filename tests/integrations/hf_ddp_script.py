"""Run by test_huggingface_ddp.py under ``torchrun --nproc_per_node=2``:
``hf_ddp_script.py METHOD OUT``; each rank writes OUT/rankR.json."""

import json
import os
import sys

import torch
import transformers

from thrifty import Thrift
from thrifty.integrations.huggingface import ThriftyTrainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_huggingface import Tokens, _model  # noqa: E402  (the single-process tests' module)


def main(method, out):
    args = {"ratio": 0.5, "period": 1} if method == "random-adaptive" else None
    thrift = Thrift(method, Tokens(n=200), epochs=3, method_args=args, log=lambda s: None)
    orders, trained = [], []
    start, loss = thrift.start_epoch, thrift.loss

    def spy_start(epoch=None):
        start(epoch)
        orders.append(thrift._order.tolist())
        trained.append([])

    def spy_loss(losses, idx, **kw):
        trained[-1].extend(torch.as_tensor(idx).tolist())
        return loss(losses, idx, **kw)

    thrift.start_epoch, thrift.loss = spy_start, spy_loss
    training = transformers.TrainingArguments(
        output_dir=os.path.join(out, "hf"), num_train_epochs=3,
        per_device_train_batch_size=16, learning_rate=1e-3, report_to=[], use_cpu=True,
        save_strategy="epoch", logging_strategy="no", disable_tqdm=True, seed=0)
    model = _model()
    trainer = ThriftyTrainer(model=model, args=training, thrift=thrift)
    trainer.train()
    rank = int(os.environ.get("RANK", "0"))
    weights = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"orders": orders, "trained": trained, "counts": thrift.counts,
                   "times_trained": thrift.record.times_trained.tolist(),
                   "weights": weights, "steps": trainer.state.global_step}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
