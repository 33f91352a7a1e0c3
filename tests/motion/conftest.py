"""Fixtures of the method tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def restore_unet(tiny_backbone):
    """The backbone is shared by the whole session: put modules, parameters and processors back whatever happens."""
    unet = tiny_backbone.unet
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
