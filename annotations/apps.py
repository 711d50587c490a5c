from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save  # noqa: PLC0415

        from annotations.models import Tag  # noqa: PLC0415
        from annotations.selectors import forget_taxonomy  # noqa: PLC0415

        # The taxonomy is cached (annotations.selectors.all_tags); any tag write drops the copy.
        post_save.connect(forget_taxonomy, sender=Tag, dispatch_uid="annotations.taxonomy.save")
        post_delete.connect(forget_taxonomy, sender=Tag, dispatch_uid="annotations.taxonomy.delete")
