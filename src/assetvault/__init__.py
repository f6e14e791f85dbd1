"""assetvault: archive every asset of Spectrum Customizer and OnPremise into a BagIt bag."""

__version__ = "0.1.0"

__all__ = ["__version__"]
