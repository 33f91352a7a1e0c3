"""Fixtures of the method tests."""

from __future__ import annotations

from contextlib import contextmanager

import pytest


@contextmanager
def _unet_restored(unet):
    """Put the UNet's modules, parameters and processors back whatever happens (the backbones are shared by the
    whole session)."""
    saved = [(module, dict(module._modules), dict(module._parameters)) for module in unet.modules()]
    processors = {name: module.processor for name, module in unet.named_modules() if hasattr(module, "set_processor")}
    try:
        yield
    finally:
        for module, children, parameters in saved:
            module._modules.clear()
            module._modules.update(children)
            module._parameters.clear()
            module._parameters.update(parameters)
        modules = dict(unet.named_modules())
        for name, processor in processors.items():
            modules[name].set_processor(processor)
        if hasattr(unet, "peft_config"):
            del unet.peft_config
        unet.requires_grad_(False)


@pytest.fixture
def restore_unet(tiny_backbone):
    """The ZeroScope-family tiny backbone's UNet, restored after the test."""
    with _unet_restored(tiny_backbone.unet):
        yield


@pytest.fixture
def family_backbone(tiny_backbone_of_each_family):
    """The tiny backbone of each family, its UNet restored after the test."""
    with _unet_restored(tiny_backbone_of_each_family.unet):
        yield tiny_backbone_of_each_family
