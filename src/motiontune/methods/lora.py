"""peft LoRA adapters on a UNet3D that sit in the UNet only while they are used.

``UNet3DConditionModel`` has no ``add_adapter`` in diffusers 0.42 (it lacks ``PeftAdapterMixin``), so the
layers come from ``peft.inject_adapter_in_model``. :class:`LoraAdapter` injects them once, then takes them out
again and keeps them: :meth:`LoraAdapter.attached` puts the peft ``lora.Linear`` layers (each wrapping the
UNet's own ``nn.Linear``, nothing copied) into their parent modules for a forward pass and puts the original
``nn.Linear`` objects back afterwards. So between passes, after training and after generation the UNet is
exactly the loaded one, and "adapters disabled" means "not attached": the same UNet, its own weights.

Tensors use peft's state-dict format (``get_peft_model_state_dict``): ``<module path>.lora_A.weight`` (r, in)
and ``<module path>.lora_B.weight`` (out, r).

Generation does not attach the peft layers: :func:`lora_applied` fuses ``W + scaling * B @ A`` once into new
weight tensors and swaps them in place of the adapted layers' own (:class:`ParameterSwap`, a pointer swap), so
the UNet keeps the plain backbone's modules and costs what the plain backbone costs per step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from motiontune.backbone.layout import LORA_SUBLAYERS, layout_for
from motiontune.backbone.patching import ModuleSwap, ParameterSwap, from_timestep, parent_and_child

LORA_A = "lora_A.weight"
LORA_B = "lora_B.weight"


class LoraError(ValueError):
    """LoRA tensors or targets that do not fit the UNet."""


@dataclass(frozen=True)
class LoraTargets:
    """Which Linear layers of the UNet's transformer blocks get LoRA.

    ``spatial``: sub-layers (``attn1``, ``attn2``, ``ff``) of the spatial transformers (``Transformer2DModel``);
    ``temporal``: sub-layers of the temporal transformers (``TransformerTemporalModel``), the input temporal
    transformer included when ``include_transformer_in``. An attention sub-layer means its to_q, to_k, to_v and
    to_out.0; ``ff`` means the feed-forward's two Linear layers (the backbone's layout names them).
    """

    spatial: tuple[str, ...] = ()
    temporal: tuple[str, ...] = ()
    include_transformer_in: bool = True

    def __post_init__(self) -> None:
        for side in ("spatial", "temporal"):
            unknown = sorted(set(getattr(self, side)) - set(LORA_SUBLAYERS))
            if unknown:
                raise LoraError(f"{side}_targets: {unknown} are not among {list(LORA_SUBLAYERS)}")
        if not self.spatial and not self.temporal:
            raise LoraError("LoRA targets: both spatial_targets and temporal_targets are empty")

    def module_names(self, unet: nn.Module) -> list[str]:
        """Names of the UNet's ``nn.Linear`` layers these targets select, in module order."""
        names = layout_for(unet).lora_target_modules(self.spatial, self.temporal, self.include_transformer_in)
        if not names:
            raise LoraError(f"LoRA targets {self} select no Linear layer of this UNet")
        return names


def lora_module_names(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """The adapted modules of peft-format LoRA tensors (``<module>.lora_A.weight`` / ``.lora_B.weight``), in key
    order; any other key is a :class:`LoraError`."""
    names: list[str] = []
    for key in tensors:
        for suffix in (LORA_A, LORA_B):
            if key.endswith(f".{suffix}"):
                name = key[: -len(suffix) - 1]
                if name not in names:
                    names.append(name)
                break
        else:
            raise LoraError(f"LoRA tensor '{key}' is not in peft format (<module>.lora_A.weight / .lora_B.weight)")
    return names


class LoraAdapter:
    """One peft LoRA adapter (rank ``r``) on named Linear layers of one UNet, attached only while in use.

    ``lora_A`` is drawn from N(0, (1/r)^2) with ``generator`` (as the MotionDirector / MotionMatcher public
    code initialises ``lora_down``) and ``lora_B`` is zero, so an untrained adapter changes nothing.
    ``lora_alpha`` defaults to ``r``: scaling 1, as in that code.
    """

    def __init__(
        self,
        unet: nn.Module,
        target_modules: Sequence[str],
        rank: int,
        adapter_name: str,
        lora_alpha: float | None = None,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        from peft import LoraConfig

        if int(rank) < 1:
            raise LoraError(f"LoRA rank: must be at least 1, got {rank}")
        if not 0.0 <= float(dropout) < 1.0:
            raise LoraError(f"LoRA dropout: must be in [0, 1), got {dropout}")
        modules = dict(unet.named_modules())
        for name in target_modules:
            if not isinstance(modules.get(name), nn.Linear):
                raise LoraError(f"LoRA target '{name}' is not a Linear layer of this UNet ({type(modules.get(name)).__name__})")
        self.unet = unet
        self.adapter_name = adapter_name
        # Our own copy: peft may rewrite config.target_modules into shorter suffixes when there are many.
        self.target_modules = list(target_modules)
        self.config = LoraConfig(
            r=int(rank),
            lora_alpha=float(lora_alpha if lora_alpha is not None else rank),
            lora_dropout=float(dropout),
            target_modules=list(target_modules),
            bias="none",
        )
        self.layers = self._build_layers(unet)
        self._slots = {name: (*parent_and_child(unet, name), layer.get_base_layer()) for name, layer in self.layers.items()}
        self._swap = ModuleSwap([(parent, child, self.layers[name]) for name, (parent, child, _) in self._slots.items()])
        with torch.no_grad():
            for layer in self.layers.values():
                down = layer.lora_A[adapter_name].weight
                # Drawn on the CPU (where the run's generator lives), then moved to the layer's device.
                down.copy_(torch.randn(down.shape, generator=generator) / self.config.r)
                nn.init.zeros_(layer.lora_B[adapter_name].weight)

    def _build_layers(self, unet: nn.Module) -> dict[str, nn.Module]:
        """Inject with peft, keep the created layers, and restore the UNet as it was (also if peft fails)."""
        from peft import inject_adapter_in_model
        from peft.tuners.tuners_utils import BaseTunerLayer

        requires_grad = {name: p.requires_grad for name, p in unet.named_parameters()}
        had_config, previous_config = hasattr(unet, "peft_config"), getattr(unet, "peft_config", None)
        if had_config:
            del unet.peft_config
        try:
            inject_adapter_in_model(self.config, unet, adapter_name=self.adapter_name)
        finally:
            layers = {
                name: module
                for name, module in unet.named_modules()
                if isinstance(module, BaseTunerLayer) and self.adapter_name in getattr(module, "lora_A", {})
            }
            # peft left its layers in the UNet: put the UNet's own Linear layers back in their slots.
            ModuleSwap([(*parent_and_child(unet, name), layer.get_base_layer()) for name, layer in layers.items()]).swap_in()
            if hasattr(unet, "peft_config"):
                del unet.peft_config
            if had_config:
                unet.peft_config = previous_config
            # peft marks every non-adapter parameter as frozen; give them back their own flags.
            for name, parameter in unet.named_parameters():
                parameter.requires_grad_(requires_grad.get(name, parameter.requires_grad))
        if sorted(layers) != sorted(self.target_modules):
            raise LoraError(f"peft adapted {len(layers)} layers, expected the {len(self.target_modules)} targets")
        return {name: layers[name] for name in self.target_modules}

    @classmethod
    def from_state_dict(
        cls, unet: nn.Module, tensors: Mapping[str, torch.Tensor], adapter_name: str, lora_alpha: float | None = None
    ) -> LoraAdapter:
        """An adapter holding ``tensors`` (peft format), its targets and rank read from the keys and shapes."""
        names = lora_module_names(tensors)
        if not names:
            raise LoraError("LoRA artifact holds no tensors")
        ranks = {int(tensors[f"{name}.{LORA_A}"].shape[0]) for name in names if f"{name}.{LORA_A}" in tensors}
        if len(ranks) != 1:
            raise LoraError(f"LoRA artifact: expected one rank, found {sorted(ranks)}")
        adapter = cls(unet, names, ranks.pop(), adapter_name, lora_alpha=lora_alpha)
        adapter.load_state_dict(tensors)
        return adapter

    def parameters(self) -> list[nn.Parameter]:
        """lora_A and lora_B of every layer, in module order."""
        out: list[nn.Parameter] = []
        for layer in self.layers.values():
            out += [layer.lora_A[self.adapter_name].weight, layer.lora_B[self.adapter_name].weight]
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """peft-format tensors: ``<module>.lora_A.weight`` (r, in), ``<module>.lora_B.weight`` (out, r)."""
        tensors: dict[str, torch.Tensor] = {}
        for name, layer in self.layers.items():
            tensors[f"{name}.{LORA_A}"] = layer.lora_A[self.adapter_name].weight.detach()
            tensors[f"{name}.{LORA_B}"] = layer.lora_B[self.adapter_name].weight.detach()
        return tensors

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Copy peft-format tensors in; keys and shapes must match exactly."""
        own = {f"{name}.{suffix}": getattr(layer, suffix.split(".")[0])[self.adapter_name].weight
               for name, layer in self.layers.items() for suffix in (LORA_A, LORA_B)}
        missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        if missing or unexpected:
            raise LoraError(f"LoRA tensors do not match the adapter: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for key, parameter in own.items():
                if tuple(tensors[key].shape) != tuple(parameter.shape):
                    raise LoraError(f"LoRA tensor '{key}' has shape {tuple(tensors[key].shape)}, the layer needs {tuple(parameter.shape)}")
                parameter.copy_(tensors[key])

    def config_dict(self) -> dict[str, Any]:
        """The LoraConfig fields that define the adapter (recorded in the artifact manifest)."""
        import peft

        return {
            "peft_type": "LORA",
            "peft_version": peft.__version__,
            "r": self.config.r,
            "lora_alpha": self.config.lora_alpha,
            "lora_dropout": self.config.lora_dropout,
            "bias": self.config.bias,
            "target_modules": list(self.target_modules),
        }

    def set_scale(self, scale: float) -> None:
        """Scale the adapter's contribution: scaling = scale * lora_alpha / r."""
        for layer in self.layers.values():
            layer.set_scale(self.adapter_name, float(scale))

    def fused_weights(self) -> dict[str, nn.Parameter]:
        """``{<layer path>.weight: W + scaling * B @ A}`` for every adapted layer, as new frozen parameters.

        Computed in float32 and stored in the layer's weight dtype and device; the UNet's own weights are not
        touched. With ``B = 0`` (or scale 0) the result equals ``W`` exactly.
        """
        fused: dict[str, nn.Parameter] = {}
        with torch.no_grad():
            for name, layer in self.layers.items():
                if getattr(layer, "fan_in_fan_out", False) or layer.use_dora.get(self.adapter_name, False):
                    raise LoraError(f"LoRA '{self.adapter_name}': cannot fuse '{name}' (fan_in_fan_out or DoRA)")
                weight = layer.get_base_layer().weight
                # peft's own B @ A * scaling (float32 adapter weights: the same float32 result as before).
                delta = layer.get_delta_weight(self.adapter_name).to(device=weight.device, dtype=torch.float32)
                fused[f"{name}.weight"] = nn.Parameter((weight.float() + delta).to(weight.dtype), requires_grad=False)
        return fused

    def eval(self) -> LoraAdapter:
        for layer in self.layers.values():
            layer.eval()
        return self

    def requires_grad_(self, requires_grad: bool) -> LoraAdapter:
        for parameter in self.parameters():
            parameter.requires_grad_(requires_grad)
        return self

    @property
    def is_attached(self) -> bool:
        return self._swap.is_in()

    def block_paths(self) -> list[str]:
        """The transformer blocks that hold the adapted layers, sorted."""
        return layout_for(self.unet).transformer_block_paths(list(self.layers))

    def attach(self) -> None:
        """Put the LoRA layers in place of the UNet's Linear layers (which they wrap)."""
        for name, (parent, child, base) in self._slots.items():
            current = getattr(parent, child)
            if current is self.layers[name]:
                continue
            if current is not base:
                raise LoraError(f"cannot attach LoRA '{self.adapter_name}': '{name}' is no longer the layer it was built on")
        self._swap.swap_in()
        configs = dict(getattr(self.unet, "peft_config", {}) or {})
        configs[self.adapter_name] = self.config
        # While attached the UNet looks like any peft-injected model (get_peft_model_state_dict works on it).
        self.unet.peft_config = configs

    def detach(self) -> None:
        """Put the UNet's own Linear layers back."""
        self._swap.swap_out()
        configs = getattr(self.unet, "peft_config", None)
        if isinstance(configs, dict) and self.adapter_name in configs:
            del configs[self.adapter_name]
            if not configs:
                del self.unet.peft_config

    @contextmanager
    def attached(self, trainable: bool = True) -> Iterator[None]:
        """The LoRA layers in the UNet for the duration of the context.

        With ``trainable=False`` the adapter still acts, but through detached views of its weights (same
        storage, ``requires_grad`` off), so the pass sends them no gradient. The views are real parameters of
        the attached layers, so anything that records the UNet's structure for a later recomputation (gradient
        checkpointing) records them too.
        """
        was_attached = self.is_attached
        self.attach()
        swaps: list[ParameterSwap] = []
        if not trainable:
            for layer in self.layers.values():
                views = {
                    f"{side}.{self.adapter_name}.weight": nn.Parameter(getattr(layer, side)[self.adapter_name].weight.detach(), requires_grad=False)
                    for side in ("lora_A", "lora_B")
                }
                swaps.append(ParameterSwap(layer, views, label=f"LoRA '{self.adapter_name}'"))
        try:
            for swap in swaps:
                swap.swap_in()
            yield
        finally:
            for swap in swaps:
                swap.swap_out()
            if not was_attached:
                self.detach()


@contextmanager
def attached_from_timestep(adapter: LoraAdapter, min_timestep: int) -> Iterator[None]:
    """The peft layers attached (unfused) in UNet calls whose timestep is ``>= min_timestep`` (all when 0);
    detached on exit. Generation uses :func:`fused_from_timestep`; this is the unfused reference."""
    with from_timestep(adapter.unet, min_timestep, adapter.attach, adapter.detach):
        yield


@contextmanager
def fused_from_timestep(adapter: LoraAdapter, min_timestep: int = 0) -> Iterator[None]:
    """The adapter fused into the UNet's weights in UNet calls whose timestep is ``>= min_timestep`` (all
    when 0), with no LoRA module in the UNet.

    The fused weights are computed once (:meth:`LoraAdapter.fused_weights`) and swapped in and out by pointer
    only when a call crosses ``min_timestep``. On exit the UNet's original parameter objects are back, so its
    weights are bitwise what they were. Costs one extra copy of the adapted layers' weights while active.
    """
    swap = ParameterSwap(adapter.unet, adapter.fused_weights(), label=f"LoRA '{adapter.adapter_name}'")
    with from_timestep(adapter.unet, min_timestep, swap.swap_in, swap.swap_out):
        yield


@contextmanager
def lora_applied(
    unet: nn.Module, tensors: Mapping[str, torch.Tensor], adapter_name: str, scale: float = 1.0, min_timestep: int = 0
) -> Iterator[None]:
    """Generation with a LoRA artifact (peft-format ``tensors``, scaled by ``scale``) fused into ``unet``,
    acting at timesteps ``>= min_timestep``; the UNet is exactly restored on exit."""
    adapter = LoraAdapter.from_state_dict(unet, tensors, adapter_name)
    adapter.requires_grad_(False).eval()
    adapter.set_scale(float(scale))
    with fused_from_timestep(adapter, int(min_timestep)):
        yield
