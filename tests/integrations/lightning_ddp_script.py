"""Run by test_lightning_ddp.py: ``python lightning_ddp_script.py METHOD OUT``. Lightning's
DDP launcher starts this script again as rank 1; each rank writes OUT/rankR.json."""

import json, os, sys, torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import lightning.pytorch as L
from thrifty import Thrift
from thrifty.data import load_digits
from thrifty.integrations.lightning import ThriftyCallback

class Model(L.LightningModule):
    def __init__(self, thrift):
        super().__init__(); torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.thrift, self.trained = thrift, []
    def forward(self, x): return self.net(x)
    def train_dataloader(self):
        return self.thrift.loader(DataLoader(self.thrift.dataset, batch_size=32, sampler=self.thrift.sampler), self)
    def on_train_epoch_start(self): self.trained.append([])
    def training_step(self, batch, i):
        x, y, idx = batch
        self.trained[-1] += idx.tolist()
        return self.thrift.loss(F.cross_entropy(self(x), y, reduction="none"), idx)
    def configure_optimizers(self): return torch.optim.SGD(self.parameters(), lr=0.1)

method, out = sys.argv[1], sys.argv[2]
d = load_digits()[0]
train = TensorDataset(d.x, d.y); train.targets = d.y
thrift = Thrift(method, train, epochs=2, batch_size=32, log=lambda s: None,
                method_args={"ratio": 0.5, "period": 1} if method == "random-adaptive" else None)
orders = []
real = thrift.start_epoch
def spy(epoch=None):
    real(epoch); orders.append(thrift._order.tolist())
thrift.start_epoch = spy
model = Model(thrift)
t = L.Trainer(max_epochs=2, strategy="ddp", devices=2, accelerator="cpu", callbacks=[ThriftyCallback(thrift)],
              logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
t.fit(model)
w = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
json.dump({"orders": orders, "trained": model.trained, "counts": thrift.counts, "weights": w,
           "times_trained": thrift.record.times_trained.tolist()},
          open(os.path.join(out, f"rank{t.global_rank}.json"), "w"))
