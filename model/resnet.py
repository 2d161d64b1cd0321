"""ResNet-18/50 building blocks with torchvision-compatible module names (no torchvision needed).

Two flavours are used by the official MiVOS networks:
* torchvision ResNet-50 ("v1.5": the stride sits on the 3x3 conv, no conv biases) for the STCN key
  encoder and the S2M DeepLabV3+ backbone (optionally dilated, `replace_stride_with_dilation`);
* MiVOS's modified ResNet-18 for the value encoder, where every conv has a bias (`conv_bias=True`)
  and conv1 takes extra input channels.
"""
import torch.nn as nn


def conv3x3(in_planes, out_planes, stride=1, dilation=1, bias=False):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     dilation=dilation, bias=bias)


def conv1x1(in_planes, out_planes, stride=1, bias=False):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=bias)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1, bias=False):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilation, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1, bias=False):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation, bias=bias)   # stride on the 3x3 (v1.5)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion, bias=bias)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision-layout ResNet trunk: conv1, bn1, relu, maxpool, layer1..layer{num_layers}.

    No avgpool / fc (none of the checkpoints has them). `forward` returns the outputs of every
    layer as a list [layer1, layer2, ...].
    """

    def __init__(self, block, layers, in_channels=3, conv_bias=False,
                 replace_stride_with_dilation=(False, False, False)):
        super().__init__()
        self.inplanes = 64
        self.dilation = 1
        self._bias = conv_bias
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=conv_bias)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        dil = (False,) + tuple(replace_stride_with_dilation)
        self.num_layers = len(layers)
        for i, n in enumerate(layers):
            stride = 1 if i == 0 else 2
            setattr(self, f'layer{i + 1}', self._make_layer(block, widths[i], n, stride, dilate=dil[i]))

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        # Same rule as torchvision: with dilation the first block keeps the previous dilation.
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride, bias=self._bias),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, previous_dilation, bias=self._bias)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dilation=self.dilation, bias=self._bias))
        return nn.Sequential(*layers)

    def stem(self, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i in range(self.num_layers):
            x = getattr(self, f'layer{i + 1}')(x)
            outs.append(x)
        return outs


def resnet18(in_channels=3, conv_bias=False, num_layers=4):
    return ResNet(BasicBlock, [2, 2, 2, 2][:num_layers], in_channels, conv_bias)


def resnet50(in_channels=3, conv_bias=False, num_layers=4, replace_stride_with_dilation=(False, False, False)):
    return ResNet(Bottleneck, [3, 4, 6, 3][:num_layers], in_channels, conv_bias, replace_stride_with_dilation)
