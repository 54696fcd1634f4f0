namespace KtConnect.Engine.Kube.Config;

/// <summary>
/// Credentials whose client certificate can change at run time (exec plugins). The handler from
/// <see cref="KubeClientConfiguration.CreateHandler"/> closes its open connections when this fires, as client-go
/// does, so a retry after a 401 really presents the new certificate instead of reusing a pooled connection.
/// </summary>
public interface IRotatingClientCertificate
{
    /// <summary>False when the certificate is fixed (then the handler keeps its default connection handling).</summary>
    bool CanRotate { get; }

    event EventHandler? ClientCertificateChanged;
}
