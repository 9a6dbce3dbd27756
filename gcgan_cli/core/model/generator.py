"""The GC-GAN generator: a mapping network, one small local generator per
semantic class on a coordinate grid, the gaze embedded into the eye and iris generators only,
softmax fusion over pseudo-depth, and a StyleGAN2 render net that outputs the image and the
segmentation.

Latents (config.n_latent compact rows, config.n_latent_expand expanded rows):
    compact W+  [B, base_layers + 2 * seg_dim, style_dim]: rows 0..base_layers-1 are the shared
                base codes; then (shape, texture) per class c at base_layers + 2c, + 2c + 1
    expanded W+ [B, seg_dim * local_layers, style_dim]: one row per local layer, class-major.
                Class c >= 1, layer l: base row l if l < base_layers, else its shape row if
                l < depth_layers, else its texture row; the background takes its shape row for
                every layer before depth_layers (it has no base codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gcgan_cli.core.model.config import ModelConfig
from gcgan_cli.core.model.layers import (
    EqualLinear,
    FixedStyledConv,
    FullyConnectedLayer,
    ModulatedConv1x1,
    PixelNorm,
    PositionEmbedding,
    StyledConv1x1,
    ToRGB,
    activation_gain,
)


@dataclass
class GeneratorOutput:
    image: torch.Tensor  # [B, 3, size, size], unbounded, trained toward [-1, 1]
    seg: torch.Tensor  # [B, seg_dim, size, size] fine segmentation logits
    seg_coarse: torch.Tensor  # [B, seg_dim, coarse, coarse] = 2 softmax(depth) - 1, in [-1, 1]
    depths: torch.Tensor  # [B, seg_dim, coarse, coarse] pseudo-depth logits (background: 0)
    latent: torch.Tensor  # [B, n_latent_expand, style_dim] the expanded W+ that was rendered


def expansion_rows(config: ModelConfig) -> list[int]:
    """For each expanded row (class-major, layer-minor), the compact row it copies."""
    rows = []
    for c in range(config.seg_dim):
        shape, texture = config.base_layers + 2 * c, config.base_layers + 2 * c + 1
        for layer in range(config.local_layers):
            if c > 0 and layer < config.base_layers:
                rows.append(layer)
            else:
                rows.append(shape if layer < config.depth_layers else texture)
    return rows


class LocalGenerator(nn.Module):
    """One class: modulated 1x1 layers on the position embedding; a depth head after
    `depth_layers` layers (none for the background) and a feature head at the end. A gaze
    class embeds (pitch, yaw) and appends it to the styles of layers base_layers.. (zeros before)."""

    def __init__(self, config: ModelConfig, depth_head: bool, gaze: bool):
        super().__init__()
        self.config, self.gaze = config, gaze
        style_dim = config.style_dim + (config.gaze_dim if gaze else 0)
        width = config.local_channels
        # The attribute names are the reference's state-dict keys, kept so its checkpoints load by name, and
        # mislead: `linears` holds modulated 1x1 convolutions, not linear layers, and `to_depth` /
        # `to_feat` are ToRGB modules, the 1x1 heads that output the depth logit and the features.
        self.linears = nn.ModuleList(StyledConv1x1(width, width, style_dim) for _ in range(config.local_layers))
        self.to_depth = ToRGB(width, 1, upsample=False) if depth_head else None
        self.to_feat = ToRGB(width, config.coarse_channels, upsample=False)
        self.embed = FullyConnectedLayer(2, config.gaze_dim) if gaze else None

    def layer_styles(self, styles: torch.Tensor, gaze: torch.Tensor | None) -> torch.Tensor:
        """[B, local_layers, style_dim (+ gaze_dim)]: a gaze class's styles with the embedded
        (normalised) gaze appended from layer base_layers on, zeros before."""
        if not self.gaze:
            return styles
        if gaze is None:
            raise ValueError("this generator is gaze-conditioned: pass gaze [B, 2] (pitch, yaw)")
        embedded = self.embed(gaze)[:, None, :].expand(-1, self.config.local_layers, -1).clone()
        embedded[:, : self.config.base_layers] = 0
        return torch.cat([styles, embedded], dim=2)

    def forward(
        self, x: torch.Tensor, styles: torch.Tensor, gaze: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [1 or B, C, H, W] embedding, styles: [B, local_layers, style_dim] -> (depth, features).
        One class layer by layer: the definition that `Generator.local_fields`, which runs every
        class at once, is tested against."""
        styles = self.layer_styles(styles, gaze)
        depth = torch.zeros_like(x[:, :1]).expand(styles.shape[0], 1, -1, -1)
        for layer, conv in enumerate(self.linears):
            x = conv(x, styles[:, layer])
            if layer + 1 == self.config.depth_layers:
                if self.to_depth is not None:
                    depth = self.to_depth(x)
                if self.config.detach_texture:
                    x = x.detach()
        return depth, self.to_feat(x)


def style_groups(local_nets: nn.ModuleList) -> list[list[int]]:
    """The classes whose styles have one width (the gaze classes' are wider), in class order."""
    widths = [net.linears[0].conv.modulation.weight.shape[1] for net in local_nets]
    return [[c for c, w in enumerate(widths) if w == width] for width in dict.fromkeys(widths)]


def sample_weights(convs: list[ModulatedConv1x1], styles: torch.Tensor, gain: float) -> torch.Tensor:
    """The per-sample demodulated weights [G, B, out, in] times `gain` of G same-shape modulated 1x1 layers at
    their styles [G, B, style], each layer's modulation as one batched product: W_{o,i} s_{b,i} / sqrt(in),
    normalised per (b, o). The layers apply them as one matrix product per sample, which never scales the
    activations themselves."""
    modulation = convs[0].modulation
    matrix = torch.stack([conv.modulation.weight for conv in convs]) * modulation.scale  # [G, in, style]
    bias = torch.stack([conv.modulation.bias for conv in convs]) * modulation.lr_mul  # [G, in]
    s = torch.baddbmm(bias[:, None], styles, matrix.transpose(1, 2)) * convs[0].scale  # [G, B, in]
    weight = torch.stack([conv.weight for conv in convs])[:, None] * s[:, :, None]  # [G, B, out, in]
    return weight * (torch.rsqrt(weight.pow(2).sum(dim=3, keepdim=True) + 1e-8) * gain)


def _heads(heads: list[ToRGB], x: torch.Tensor, batch: int) -> torch.Tensor:
    """The 1x1 heads of several classes on their rows of x [classes * batch, in, P], as one
    product: [classes * batch, out, P]."""
    weight = torch.stack([head.conv.matrix() for head in heads]).repeat_interleave(batch, dim=0)
    bias = torch.stack([head.bias.view(-1) for head in heads]).repeat_interleave(batch, dim=0)[:, :, None]
    return torch.baddbmm(bias, weight, x)


class RenderNet(nn.Module):
    """Fused features -> image and segmentation, StyleGAN2 skip outputs, from min_feat_size up.

    The level whose input is coarse_size also takes the unpooled fused features; with
    residual_refine the coarse mask is added to the segmentation where it reaches coarse_size.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # `to_segs`, like `to_rgbs`, holds ToRGB modules: the reference's name for any 1x1 output head.
        self.convs, self.to_rgbs, self.to_segs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, res in enumerate(config.resolution_levels()):
            # The first level takes the pooled fused features; the coarse_size level also the unpooled ones.
            in_ch = (config.coarse_channels if i == 0 else config.channels(res)) + (
                config.coarse_channels if res == config.coarse_size else 0
            )
            out_ch = config.channels(2 * res)
            self.convs.append(FixedStyledConv(in_ch, out_ch, 3, upsample=True))
            self.convs.append(FixedStyledConv(out_ch, out_ch, 3))
            self.to_rgbs.append(ToRGB(out_ch, 3, upsample=i > 0))
            self.to_segs.append(ToRGB(out_ch, config.seg_dim, upsample=i > 0))
            for j in range(2):
                self.register_buffer(f"noise_{2 * i + j}", torch.randn(1, 1, 2 * res, 2 * res))

    def forward(
        self, feat: torch.Tensor, seg_coarse: torch.Tensor, noise: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.adaptive_avg_pool2d(feat, self.config.min_feat_size)
        rgb = seg = None
        for i, res in enumerate(self.config.resolution_levels()):
            if res == self.config.coarse_size:
                x = torch.cat([x, feat], dim=1)
            x = self.convs[2 * i](x, noise[2 * i] if noise else None)
            x = self.convs[2 * i + 1](x, noise[2 * i + 1] if noise else None)
            rgb = self.to_rgbs[i](x, rgb)
            seg = self.to_segs[i](x, seg)
            if self.config.residual_refine and 2 * res == self.config.coarse_size:
                seg = seg + seg_coarse
        return rgb, seg

    def fixed_noise(self) -> list[torch.Tensor]:
        return [getattr(self, f"noise_{i}") for i in range(len(self.convs))]


class Generator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validate()
        self.style = nn.Sequential(
            PixelNorm(),
            *(
                EqualLinear(config.style_dim, config.style_dim, lr_mul=config.lr_mlp, activate=True)
                for _ in range(config.n_mlp)
            ),
        )
        self.pos_embed = PositionEmbedding(config.local_channels, n_freqs=config.size.bit_length() - 1)
        gaze_ids = set(config.gaze_ids)
        self.local_nets = nn.ModuleList(
            LocalGenerator(config, depth_head=c > 0, gaze=c in gaze_ids) for c in range(config.seg_dim)
        )
        self.render_net = RenderNet(config)
        self.style_groups = style_groups(self.local_nets)
        order = [c for group in self.style_groups for c in group]
        # Where the groups reorder the classes, the rows of their concatenation in class order.
        self.grouped_rows = None if order == sorted(order) else [order.index(c) for c in range(config.seg_dim)]
        self.register_buffer("expansion", torch.tensor(expansion_rows(config)), persistent=False)
        axis = torch.linspace(-1, 1, config.coarse_size)
        grid = torch.stack([axis[None, :].expand(config.coarse_size, -1), axis[:, None].expand(-1, config.coarse_size)])
        self.register_buffer(
            "grid", grid[None], persistent=False
        )  # [1, 2, H, W]: x along the width, y along the height
        self.register_buffer("gaze_mean", torch.tensor(config.gaze_mean), persistent=False)
        self.register_buffer("gaze_std", torch.tensor(config.gaze_std), persistent=False)

    # --- latents ---

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, generator: torch.Generator | None = None) -> torch.Tensor:
        """The mean w of n mapped z: the truncation centre, [1, style_dim]."""
        z = torch.randn(n, self.config.style_dim, generator=generator, device=self.grid.device)
        return self.style(z).mean(0, keepdim=True)

    def compact(self, w: torch.Tensor) -> torch.Tensor:
        """[B, style_dim] (or already [B, n_latent, style_dim]) -> compact W+."""
        if w.ndim == 2:
            return w[:, None].expand(-1, self.config.n_latent, -1)
        if w.ndim != 3 or w.shape[1] != self.config.n_latent:
            raise ValueError(
                f"expected w [B, {self.config.style_dim}] or W+ [B, {self.config.n_latent}, "
                f"{self.config.style_dim}], got {tuple(w.shape)}"
            )
        return w

    def expand(self, latent: torch.Tensor) -> torch.Tensor:
        """Compact [B, n_latent, D] -> expanded [B, n_latent_expand, D]; expanded passes through."""
        if latent.shape[1] == self.config.n_latent_expand:
            return latent
        return self.compact(latent).index_select(1, self.expansion)

    def mix(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Style mixing of two compact W+, the reference's rule: base rows from a; per class and sample,
        shape and texture both from a, shape from a and texture from b, or both from b."""
        a, b = self.compact(a), self.compact(b)
        choice = torch.randint(0, 3, (a.shape[0], self.config.seg_dim), generator=generator, device=a.device)
        from_b = torch.zeros(a.shape[:2], dtype=torch.bool, device=a.device)
        rows = self.config.base_layers + 2 * torch.arange(self.config.seg_dim, device=a.device)
        from_b[:, rows] = choice == 2
        from_b[:, rows + 1] = choice >= 1
        return torch.where(from_b[:, :, None], b, a)

    def latent_of(
        self,
        z: torch.Tensor | list[torch.Tensor],
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        mix_generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Expanded W+ from one z [B, D] or two (mixed), truncated toward `truncation_latent` first."""
        codes = z if isinstance(z, (list, tuple)) else [z]
        if not 1 <= len(codes) <= 2:
            raise ValueError(f"give one or two z codes, got {len(codes)}")
        ws = [self.style(code) for code in codes]
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent (see mean_latent)")
            ws = [truncation_latent + truncation * (w - truncation_latent) for w in ws]
        compact = self.mix(ws[0], ws[1], mix_generator) if len(ws) == 2 else self.compact(ws[0])
        return self.expand(compact)

    # --- synthesis ---

    def local_fields(self, latent: torch.Tensor, gaze: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every local generator at once: (depths [B, seg_dim, c, c], the background's 0;
        features [seg_dim, B, coarse_channels, c, c])."""
        depths, hidden = self.local_hidden(latent, gaze)
        features = _heads([net.to_feat for net in self.local_nets], hidden, depths.shape[0])
        return depths, features.view(self.config.seg_dim, depths.shape[0], -1, *depths.shape[2:])

    def local_hidden(self, latent: torch.Tensor, gaze: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every local generator at once up to its feature head: (depths [B, seg_dim, c, c], the last
        layer's activations [seg_dim * B, local_channels, c * c], class-major).

        Each layer is one matrix product over all (class, sample) pairs with per-sample
        demodulated weights, the bias and gain inside it and the leaky ReLU in place, where
        LocalGenerator.forward runs seg_dim networks, each scaling its activations twice.
        """
        latent, config = self.expand(latent), self.config
        classes, layers, batch, size = config.seg_dim, config.local_layers, latent.shape[0], config.coarse_size
        if gaze is not None:
            gaze = (gaze.to(self.gaze_mean.dtype) - self.gaze_mean) / self.gaze_std
        styles = [
            net.layer_styles(latent[:, c * layers : (c + 1) * layers], gaze) for c, net in enumerate(self.local_nets)
        ]
        groups, rows = self.style_groups, self.grouped_rows
        group_styles = [torch.stack([styles[c] for c in group]) for group in groups]  # [G, B, layers, style]
        x = self.pos_embed(self.grid).flatten(2)[0]  # [C, H*W]: the same for every class and sample
        depths = latent.new_zeros(batch, 1, size * size)
        for layer in range(layers):
            styled = [net.linears[layer] for net in self.local_nets]
            gain = activation_gain(styled[0].activate)
            weight = torch.cat(
                [
                    sample_weights([styled[c].conv for c in group], style[:, :, layer], gain)
                    for group, style in zip(groups, group_styles)
                ]
            )  # [C (grouped order), B, out, in]
            weight = (weight if rows is None else weight[rows]).flatten(0, 1)
            bias = (torch.stack([s.activate.bias for s in styled]) * gain).repeat_interleave(batch, dim=0)[:, :, None]
            if layer == 0:  # one product [classes * batch * out, in] @ [in, H*W]
                x = torch.addmm(bias.flatten(0, 1), weight.flatten(0, 1), x).view(classes * batch, -1, x.shape[1])
            else:
                x = torch.baddbmm(bias, weight, x)
            x = F.leaky_relu_(x, styled[0].activate.negative_slope)
            if layer + 1 == config.depth_layers:
                heads = [net.to_depth for net in self.local_nets[1:]]
                depth = _heads(heads, x[batch:], batch)  # [(classes - 1) * batch, 1, H*W]
                depths = torch.cat([depths, depth.view(classes - 1, batch, -1).transpose(0, 1)], dim=1)
                if config.detach_texture:
                    x = x.detach()
        return depths.view(batch, classes, size, size), x

    def composed_fields(
        self, latent: torch.Tensor, gaze: torch.Tensor | None, composition_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(depths, masks seg = softmax over the depths [B, seg_dim, c, c], the fused features
        feat = sum_c seg_c * features_c [B, coarse_channels, c, c]).

        composition_mask [B, seg_dim] keeps only some classes (the masks renormalised). A class's
        1x1 feature head commutes with its per-pixel mask weight, so feat is one product over every
        class's last layer, [W_1 .. W_C] [seg_1 h_1; ..; seg_C h_C] + [b_1 .. b_C] seg, and the
        per-class features [seg_dim, B, coarse_channels, c, c] are never built.
        """
        depths, hidden = self.local_hidden(latent, gaze)
        seg = depths.softmax(dim=1)
        if composition_mask is not None:
            seg = seg * composition_mask[:, :, None, None]
            seg = seg / (seg.sum(dim=1, keepdim=True) + 1e-8)
        (batch, classes), weights = seg.shape[:2], seg.flatten(2)  # [B, C, P]
        heads = [net.to_feat for net in self.local_nets]
        matrix = torch.cat([head.conv.matrix() for head in heads], dim=1)  # [K, C * in]
        bias = torch.cat([head.bias.view(-1, 1) for head in heads], dim=1)  # [K, C]
        scaled = hidden.view(classes, batch, -1, weights.shape[2]) * weights.transpose(0, 1)[:, :, None]
        scaled = scaled.transpose(0, 1).reshape(batch, -1, weights.shape[2])  # [B, C * in, P]
        feat = torch.baddbmm(torch.matmul(bias, weights), matrix.expand(batch, -1, -1), scaled)
        return depths, seg, feat.view(batch, -1, *seg.shape[2:])

    def local_outputs(self, latent: torch.Tensor, gaze: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(depth [B,1,c,c], features [B,coarse_channels,c,c]) of every local generator."""
        depths, features = self.local_fields(latent, gaze)
        return [(depths[:, c : c + 1], features[c]) for c in range(self.config.seg_dim)]

    def synthesize(
        self,
        latent: torch.Tensor,
        gaze: torch.Tensor | None,
        noise: list[torch.Tensor] | None = None,
        randomize_noise: bool = True,
        composition_mask: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """Render an expanded (or compact) W+ at `gaze` [B, 2] = (pitch, yaw).

        composition_mask [B, seg_dim] keeps only some classes (weights renormalised): with a
        one-hot row, the image of one part alone.
        """
        latent = self.expand(latent)
        depths, seg, feat = self.composed_fields(latent, gaze, composition_mask)
        seg_coarse = 2 * seg - 1
        if noise is None and not randomize_noise:
            noise = self.render_net.fixed_noise()
        image, seg_fine = self.render_net(feat, seg_coarse, noise)
        return GeneratorOutput(image, seg_fine, seg_coarse, depths, latent)

    def forward(
        self,
        z: torch.Tensor | list[torch.Tensor],
        gaze: torch.Tensor | None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        noise: list[torch.Tensor] | None = None,
        randomize_noise: bool = True,
        composition_mask: torch.Tensor | None = None,
        input_is_latent: bool = False,
    ) -> GeneratorOutput:
        """From z (one or two codes), or with input_is_latent from a W+ [B, rows, style_dim]: the
        regularisers differentiate with respect to W+ through the (DDP-wrapped) forward."""
        latent = z if input_is_latent else self.latent_of(z, truncation, truncation_latent)
        return self.synthesize(latent, gaze, noise, randomize_noise, composition_mask)

    def class_images(
        self, latent: torch.Tensor, gaze: torch.Tensor | None, noise: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """[B, seg_dim, 3, H, W]: each class rendered alone (composition mask one-hot), for
        part-wise editing views. Fixed noise unless `noise` is given."""
        latent = self.expand(latent)
        noise = noise if noise is not None else self.render_net.fixed_noise()
        eye = torch.eye(self.config.seg_dim, device=latent.device)
        images = [
            self.synthesize(latent, gaze, noise, composition_mask=eye[c].expand(latent.shape[0], -1)).image
            for c in range(self.config.seg_dim)
        ]
        return torch.stack(images, dim=1)
