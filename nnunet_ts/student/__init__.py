"""The soft-label student's pieces: soft targets through preprocessing, loading, augmentation and loss."""
