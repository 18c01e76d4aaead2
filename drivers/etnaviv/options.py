"""The compile target: one SoC row plus the driver's compile switches (Mesa: the NPU half of
``etnaviv_screen.c``'s specs, ``screen->specs.nn_core_version`` and the hwdb core info).

:class:`EtnaOptions` is the one frozen record of compile switches the cost-model ablations flip.
It comes from the device name (``etnaviv:a311d?compression=off&sram=off``, see
``gallium/loader.py``) or is passed to :class:`~mesa_npu.drivers.etnaviv.device.EtnaDevice`
directly. Keys, values and defaults:

=============  =====================  =============================================================
key            values                 meaning
=============  =====================  =============================================================
compression    on (default), off      weight compression at all (off: v7 plain bytes, v8 identity
                                      symbol map)
search         on (default), off      per-layer codec search (v7 zrl_bits, v8 symbol map); off:
                                      Mesa's fixed choices
v8_zrl         off (default), on      v8 zero-run mode (our interpretation of Mesa's unfinished
                                      code; see ``codec_v8``)
sram           on (default), off      v7 SRAM caching of kernels and input tiles (brief §5); v8
                                      never caches (Mesa forces NO_CACHE there)
tiles          mesa (default),        output tile policy: Mesa's rules (brief §5, v8 tile height
               uncapped               capped at 4), or the same without the v8 cap
cores          all (default), one     NN and TP cores a job may use
requant        nearest (default),     NN post multiplier: the scale's mantissa rounded to 15 (v7)
               mesa                   or 23 (v8) bits, or truncated as Mesa does
per_axis       split (default),       per-axis weights: one NN job per run of channels sharing
               requantize             a multiplier (no added error; more jobs), or requantized
                                      to one scale (one job; ``lower_per_axis_weights``' bound)
=============  =====================  =============================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace

from ...util.soc import EtnavivNpu, Soc
from .codec_bits import WeightCompressionConfig


class OptionError(ValueError):
    """A device option that does not parse: one line naming the key."""


class TilePolicy(enum.Enum):
    MESA = "mesa"
    UNCAPPED = "uncapped"


class CoreUse(enum.Enum):
    ALL = "all"
    ONE = "one"


class PerAxis(enum.Enum):
    SPLIT = "split"  # one NN job per run of channels sharing a multiplier: exact requant
    REQUANTIZE = "requantize"  # lower_per_axis_weights: one scale, bounded error, one job


class RequantRounding(enum.Enum):
    NEAREST = "nearest"  # the post multiplier is the scale's mantissa rounded to its bits
    MESA = "mesa"  # truncated, as Mesa writes it


_BOOL = {"on": True, "off": False, "1": True, "0": False, "true": True, "false": False}


@dataclass(frozen=True, slots=True)
class EtnaOptions:
    """Compile switches (module docstring); the default is the driver as shipped."""

    compression: bool = True
    search: bool = True
    v8_zrl: bool = False
    sram: bool = True
    tiles: TilePolicy = TilePolicy.MESA
    cores: CoreUse = CoreUse.ALL
    requant: RequantRounding = RequantRounding.NEAREST
    per_axis: PerAxis = PerAxis.SPLIT

    @property
    def nearest(self) -> bool:
        return self.requant is RequantRounding.NEAREST

    @property
    def weight_config(self) -> WeightCompressionConfig:
        """The codecs' frozen switches (also their cache key)."""
        return WeightCompressionConfig(self.compression, self.search, self.v8_zrl)

    @classmethod
    def parse(cls, text: str) -> EtnaOptions:
        """Options from ``key=value&key=value`` (the part of a device name after ``?``)."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for item in filter(None, text.split("&")):
            key, sep, value = item.partition("=")
            if key not in known or not sep:
                raise OptionError(
                    f"etnaviv: unknown option '{item}' (known: {', '.join(known)}, as key=value)"
                )
            kind = type(getattr(cls(), key))
            try:
                values[key] = _BOOL[value] if kind is bool else kind(value)
            except (KeyError, ValueError):
                raise OptionError(f"etnaviv: option {key} cannot be '{value}'") from None
        return replace(cls(), **values)

    def describe(self) -> str:
        """The options that differ from the default, as ``key=value&...`` (empty: default)."""
        default = EtnaOptions()
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                text = ("on" if value else "off") if isinstance(value, bool) else value.value
                parts.append(f"{f.name}={text}")
        return "&".join(parts)


@dataclass(frozen=True, slots=True)
class NpuTarget:
    """What a compile needs to know about the hardware: the SoC row and the options."""

    soc: Soc
    options: EtnaOptions = EtnaOptions()

    @property
    def npu(self) -> EtnavivNpu:
        assert isinstance(self.soc.npu, EtnavivNpu)
        return self.soc.npu

    @property
    def version(self) -> int:
        return self.npu.nn_core_version

    @property
    def nn_cores(self) -> int:
        """NN cores a job is spread over (all, or one with ``cores=one``)."""
        return 1 if self.options.cores is CoreUse.ONE else self.npu.nn_cores

    @property
    def tp_cores(self) -> int:
        return 1 if self.options.cores is CoreUse.ONE else self.npu.tp_cores
