"""PyTorch twins of the benchmarked kdjax models and steps (eager mode, NCHW, float32), the reference side of the
benchmarks. Architectures follow kdjax.models (the Jacobian-matching paper's VGG-4/9; mdistiller CIFAR ResNets); parameter counts are
checked against the kdjax models by `parameter_count` in benchmarks/train_step.py."""
import torch
import torch.nn as nn
import torch.nn.functional as F

VGG_BLOCKS = {"vgg4": ((64,), (128,), (512,)), "vgg9": ((64,), (128,), (256, 256), (512, 512), (512, 512))}


class VGG(nn.Module):
    def __init__(self, name, num_classes, in_ch=3):
        super().__init__()
        layers = []
        for block in VGG_BLOCKS[name]:
            for w in block:
                layers += [nn.Conv2d(in_ch, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                in_ch = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, n, widths, num_classes, in_ch=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        blocks, cin = [], widths[0]
        for w, s in zip(widths[1:], (1, 2, 2)):
            for b in range(n):
                blocks.append(BasicBlock(cin, w, s if b == 0 else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


CIFAR_RESNETS = {"resnet8": (1, (16, 16, 32, 64)), "resnet8x4": (1, (32, 64, 128, 256)),
                 "resnet32x4": (5, (32, 64, 128, 256))}
MDISTILLER_VGGS = {"vgg8": ((64,), (128,), (256,), (512,), (512,)),
                   "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512))}


class MdistillerVGG(nn.Module):
    """mdistiller's CIFAR VGG at 32x32: conv (bias) - BN - ReLU, max-pools after blocks 0-2, global average pool."""

    def __init__(self, name, num_classes, in_ch=3):
        super().__init__()
        stages = []
        for i, block in enumerate(MDISTILLER_VGGS[name]):
            layers = []
            for w in block:
                layers += [nn.Conv2d(in_ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                in_ch = w
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*stages)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def _shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _conv_bn(cin, cout, k, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class ShuffleV2Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        c = channels // 2
        self.branch = nn.Sequential(*_conv_bn(c, c, 1), nn.ReLU(inplace=True), *_conv_bn(c, c, 3, groups=c),
                                    *_conv_bn(c, c, 1), nn.ReLU(inplace=True))

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return _shuffle(torch.cat([x1, self.branch(x2)], 1))


class ShuffleV2Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.left = nn.Sequential(*_conv_bn(cin, cin, 3, 2, groups=cin), *_conv_bn(cin, mid, 1), nn.ReLU(inplace=True))
        self.right = nn.Sequential(*_conv_bn(cin, mid, 1), nn.ReLU(inplace=True), *_conv_bn(mid, mid, 3, 2, groups=mid),
                                   *_conv_bn(mid, mid, 1), nn.ReLU(inplace=True))

    def forward(self, x):
        return _shuffle(torch.cat([self.left(x), self.right(x)], 1))


class ShuffleNetV2(nn.Module):
    """mdistiller's CIFAR ShuffleV2 (net size 1): 1x1 stem of 24, stages of (116, 232, 464) x (3, 7, 3), 1x1 to 1024."""

    def __init__(self, num_classes, in_ch=3):
        super().__init__()
        layers, cin = [*_conv_bn(in_ch, 24, 1), nn.ReLU(inplace=True)], 24
        for cout, n in zip((116, 232, 464), (3, 7, 3)):
            layers.append(ShuffleV2Down(cin, cout))
            layers += [ShuffleV2Block(cout) for _ in range(n)]
            cin = cout
        layers += [*_conv_bn(cin, 1024, 1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def get_model(name, num_classes=100, in_ch=3):
    if name in VGG_BLOCKS:
        return VGG(name, num_classes, in_ch)
    if name in MDISTILLER_VGGS:
        return MdistillerVGG(name, num_classes, in_ch)
    if name == "shufflev2":
        return ShuffleNetV2(num_classes, in_ch)
    n, widths = CIFAR_RESNETS[name]
    model = CifarResNet(n, widths, num_classes, in_ch)
    for m in model.modules():  # mdistiller's init, as kdjax's CIFAR ResNets
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def kd_loss(student_logits, teacher_logits, labels, temperature=4.0):
    """0.1 CE + 0.9 T^2 batchmean KL, as the kdjax 'kd' recipe."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="batchmean")
    return 0.1 * F.cross_entropy(student_logits, labels) + 0.9 * t * t * kl


def make_cached_kd_step(student):
    """The KD step given the teacher's logits (what a teacher-output cache feeds): student forward / backward + SGD."""
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    student.train()

    def step(x, y, t_logits):
        loss = kd_loss(student(x), t_logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def make_kd_step(teacher, student, jacobian=False):
    """One eager KD step: teacher forward (eval, no grad), student forward/backward, SGD update. With `jacobian`,
    + ||d z_s[y]/dx - d z_t[y]/dx||^2 (sum over pixels, mean over the batch) by double backprop."""
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    teacher.eval()
    student.train()

    def step(x, y):
        if jacobian:
            x = x.clone().requires_grad_(True)
            t_logits = teacher(x)
            g_t = torch.autograd.grad(t_logits.gather(1, y[:, None]).sum(), x)[0].detach()
            t_logits = t_logits.detach()
        else:
            with torch.no_grad():
                t_logits = teacher(x)
        s_logits = student(x)
        loss = kd_loss(s_logits, t_logits, y)
        if jacobian:
            # kdjax evaluates Jacobians with running BN statistics (per-example): the same here, via eval mode.
            student.eval()
            g_s = torch.autograd.grad(student(x).gather(1, y[:, None]).sum(), x, create_graph=True)[0]
            student.train()
            loss = loss + (g_s - g_t).pow(2).flatten(1).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()
    return step
