"""Run by test_lightning_ddp.py: ``python lightning_ddp_script.py METHOD OUT``. Lightning's
DDP launcher starts this script again as rank 1; each rank writes OUT/rankR.json."""

import json
import os
import sys

import lightning.pytorch as L
import torch
from torch.utils.data import TensorDataset

from thrifty import Thrift
from thrifty.data import load_digits
from thrifty.integrations.lightning import ThriftyCallback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_lightning import Model  # noqa: E402  (the module of the single-process tests)


def main(method, out):
    data = load_digits()[0]
    train = TensorDataset(data.x, data.y)
    train.targets = data.y
    args = {"ratio": 0.5, "period": 1} if method == "random-adaptive" else None
    thrift = Thrift(method, train, epochs=2, batch_size=32, method_args=args,
                    log=lambda s: None)
    orders = []
    start = thrift.start_epoch

    def spy(epoch=None):
        start(epoch)
        orders.append(thrift._order.tolist())

    thrift.start_epoch = spy
    model = Model(thrift)
    trainer = L.Trainer(max_epochs=2, strategy="ddp", devices=2, accelerator="cpu",
                        callbacks=[ThriftyCallback(thrift)], logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False)
    trainer.fit(model)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    report = {"orders": orders, "trained": model.trained, "counts": thrift.counts,
              "weights": weights, "times_trained": thrift.record.times_trained.tolist()}
    with open(os.path.join(out, f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
