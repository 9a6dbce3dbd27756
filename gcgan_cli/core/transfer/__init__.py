"""FP-GAN style unpaired eye-patch translation: networks, image pool and the landmark loss net."""
